//! Derives of `rustelixir_nif::Decoder` and `Encoder` in Rustler's forms, under Rustler's
//! names, so that a crate ports by changing its `use` lines (re-exported by
//! `rustelixir-nif`):
//!
//! | derive | Rust | term |
//! |---|---|---|
//! | `NifStruct` (`#[module = "MyApp.Point"]`) | struct with named fields | `%MyApp.Point{x: 1, y: 2}` |
//! | `NifException` (`#[module = "MyApp.Error"]`) | struct with named fields | the exception struct (`__exception__: true`) |
//! | `NifMap` | struct with named fields | `%{x: 1, y: 2}` |
//! | `NifTuple` | struct (named or tuple fields) | `{1, 2}` |
//! | `NifRecord` (`#[tag = "point"]`) | struct (named or tuple fields) | `{:point, 1, 2}` |
//! | `NifUnitEnum` | enum of unit variants | `:red`, `:dark_blue` |
//! | `NifTaggedEnum` | enum | `:unit`, `{:one, v}`, `{:many, a, b}`, `{:named, %{f: v}}` |
//! | `NifUntaggedEnum` | enum of one-field variants | the field's term (the first variant that decodes) |
//!
//! Variant names become snake_case atoms; `#[rustelixir(rename = "name")]` on a field or a
//! variant gives its atom. Generic types get the bounds they need (`T: Decoder` to decode,
//! `T: Encoder` to encode). A term of the wrong shape is a badarg whose message names the
//! type and the field ("MyApp.Point field y: expected an integer, got an atom").

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Error, Fields, Generics, Ident, LitStr, Result};

/// Where the generated code finds rustelixir-nif.
fn krate() -> Tokens {
    quote!(::rustelixir_nif)
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Struct,
    Exception,
    Map,
    Tuple,
    Record,
    UnitEnum,
    TaggedEnum,
    UntaggedEnum,
}

macro_rules! derive_entry {
    ($name:ident, $form:expr) => {
        #[proc_macro_derive($name, attributes(module, tag, rustelixir))]
        #[allow(non_snake_case)]
        pub fn $name(input: TokenStream) -> TokenStream {
            let input = parse_macro_input!(input as DeriveInput);
            expand(&input, $form).unwrap_or_else(Error::into_compile_error).into()
        }
    };
}

derive_entry!(NifStruct, Form::Struct);
derive_entry!(NifException, Form::Exception);
derive_entry!(NifMap, Form::Map);
derive_entry!(NifTuple, Form::Tuple);
derive_entry!(NifRecord, Form::Record);
derive_entry!(NifUnitEnum, Form::UnitEnum);
derive_entry!(NifTaggedEnum, Form::TaggedEnum);
derive_entry!(NifUntaggedEnum, Form::UntaggedEnum);

// --- Attributes -----------------------------------------------------------------------------

/// `#[name = "value"]` on the item (Rustler's `module` and `tag`), or `#[rustelixir(name =
/// "value")]`.
fn string_attr(attrs: &[Attribute], name: &str) -> Result<Option<String>> {
    let mut found = None;
    for attr in attrs {
        if attr.path().is_ident(name) {
            let value = match &attr.meta {
                syn::Meta::NameValue(syn::MetaNameValue {
                    value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }), ..
                }) => s.clone(),
                other => return Err(Error::new_spanned(other, format!("expected #[{name} = \"...\"]"))),
            };
            found = Some(value.value());
        } else if attr.path().is_ident("rustelixir") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(name) {
                    found = Some(meta.value()?.parse::<LitStr>()?.value());
                } else {
                    // Another key of ours: read past its value.
                    let _ = meta.value()?.parse::<LitStr>()?;
                }
                Ok(())
            })?;
        }
    }
    Ok(found)
}

/// The atom a field or variant is written as: its rename, else `default`.
fn atom_name(attrs: &[Attribute], default: String) -> Result<String> {
    Ok(string_attr(attrs, "rename")?.unwrap_or(default))
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Elixir module's atom: `MyApp.Point` is `Elixir.MyApp.Point`.
fn module_atom(module: &str) -> String {
    if module.starts_with("Elixir.") {
        module.to_string()
    } else {
        format!("Elixir.{module}")
    }
}

// --- Generics -------------------------------------------------------------------------------

/// The impl's generics with `bound` on every type parameter.
fn bounded(generics: &Generics, bound: Tokens) -> Generics {
    let mut generics = generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse2(bound.clone()).expect("a trait path"));
    }
    generics
}

fn impls(input: &DeriveInput, decode: Tokens, encode: Tokens) -> Tokens {
    let krate = krate();
    let name = &input.ident;
    let decoding = bounded(&input.generics, quote!(#krate::Decoder));
    let encoding = bounded(&input.generics, quote!(#krate::Encoder));
    let (dimpl, dty, dwhere) = decoding.split_for_impl();
    let (eimpl, ety, ewhere) = encoding.split_for_impl();
    quote! {
        impl #dimpl #krate::Decoder for #name #dty #dwhere {
            fn decode(term: &#krate::Term) -> ::core::result::Result<Self, #krate::ArgError> {
                #decode
            }
        }
        impl #eimpl #krate::Encoder for #name #ety #ewhere {
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                #encode
            }
        }
    }
}

// --- Expansion ------------------------------------------------------------------------------

fn expand(input: &DeriveInput, form: Form) -> Result<Tokens> {
    match (&input.data, form) {
        (Data::Struct(data), Form::Struct | Form::Exception | Form::Map) => match &data.fields {
            Fields::Named(_) => map_like(input, &data.fields, form),
            _ => Err(Error::new_spanned(&input.ident, "this derive needs a struct with named fields")),
        },
        (Data::Struct(data), Form::Tuple | Form::Record) => tuple_like(input, &data.fields, form),
        (Data::Enum(data), Form::UnitEnum | Form::TaggedEnum | Form::UntaggedEnum) => enum_like(input, data, form),
        (Data::Enum(_), _) => Err(Error::new_spanned(&input.ident, "this derive is for structs (for enums: NifUnitEnum, NifTaggedEnum, NifUntaggedEnum)")),
        (Data::Struct(_), _) => Err(Error::new_spanned(&input.ident, "this derive is for enums")),
        (Data::Union(_), _) => Err(Error::new_spanned(&input.ident, "unions have no term")),
    }
}

/// A field: its Rust name (or index) and its atom.
struct Field {
    member: syn::Member,
    atom: String,
    ty: syn::Type,
}

fn fields_of(fields: &Fields) -> Result<Vec<Field>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (member, default) = match &f.ident {
                Some(ident) => (syn::Member::Named(ident.clone()), ident.to_string().trim_start_matches("r#").to_string()),
                None => (syn::Member::Unnamed(i.into()), i.to_string()),
            };
            Ok(Field { member, atom: atom_name(&f.attrs, default)?, ty: f.ty.clone() })
        })
        .collect()
}

/// Decoding named `fields` from the map pairs in `pairs` (a `&[(Term, Term)]`) into
/// `construct` (the path of the struct or variant), naming `what` in errors.
fn decode_named(fields: &[Field], construct: Tokens, what: &str, pairs: Tokens) -> Tokens {
    let krate = krate();
    let slots: Vec<Ident> = (0..fields.len()).map(|i| format_ident!("field_{}", i)).collect();
    let types = fields.iter().map(|f| &f.ty);
    let atoms: Vec<&String> = fields.iter().map(|f| &f.atom).collect();
    let members = fields.iter().map(|f| &f.member);
    quote! {
        #( let mut #slots: ::core::option::Option<#types> = ::core::option::Option::None; )*
        for (key, value) in #pairs {
            match #krate::derive_support::atom_key(key) {
                #( ::core::option::Option::Some(#atoms) => {
                    #slots = ::core::option::Option::Some(#krate::derive_support::field(value, #what, #atoms)?)
                } )*
                _ => {}
            }
        }
        ::core::result::Result::Ok(#construct {
            #( #members: #slots.ok_or_else(|| #krate::derive_support::missing(#what, #atoms))?, )*
        })
    }
}

/// Encoding named fields (reached as `access(member)`) as map pairs, after `extra` pairs.
fn encode_named(fields: &[Field], extra: &[(String, Tokens)], access: impl Fn(&syn::Member) -> Tokens) -> Tokens {
    let krate = krate();
    let count = fields.len() + extra.len();
    let extra_keys = extra.iter().map(|(k, _)| k);
    let extra_values = extra.iter().map(|(_, v)| v);
    let atoms = fields.iter().map(|f| &f.atom);
    let values = fields.iter().map(|f| access(&f.member));
    quote! {
        #krate::derive_support::map_header(out, #count);
        #( #krate::derive_support::atom(out, #extra_keys); #extra_values; )*
        #( #krate::derive_support::atom(out, #atoms); #krate::Encoder::encode(#values, out); )*
    }
}

fn map_like(input: &DeriveInput, fields: &Fields, form: Form) -> Result<Tokens> {
    let krate = krate();
    let name = &input.ident;
    let fields = fields_of(fields)?;
    let module = string_attr(&input.attrs, "module")?;
    let (what, check, extra) = match form {
        Form::Map => (name.to_string(), quote!(), vec![]),
        _ => {
            let module = module.ok_or_else(|| Error::new(Span::call_site(), "NifStruct and NifException need #[module = \"Elixir.Module\"]"))?;
            let atom = module_atom(&module);
            let shown = atom.trim_start_matches("Elixir.").to_string();
            let mut extra = vec![("__struct__".to_string(), quote!(#krate::derive_support::atom(out, #atom)))];
            if form == Form::Exception {
                extra.push(("__exception__".to_string(), quote!(#krate::derive_support::atom(out, "true"))));
            }
            (shown.clone(), quote!(#krate::derive_support::check_struct(pairs, #atom, #shown)?;), extra)
        }
    };
    let decode_fields = decode_named(&fields, quote!(Self), &what, quote!(pairs));
    let decode = quote! {
        let pairs = #krate::derive_support::map_pairs(term, #what)?;
        #check
        #decode_fields
    };
    let encode = encode_named(&fields, &extra, |m| quote!(&self.#m));
    Ok(impls(input, decode, encode))
}

fn tuple_like(input: &DeriveInput, fields: &Fields, form: Form) -> Result<Tokens> {
    let krate = krate();
    let name = input.ident.to_string();
    let fields = fields_of(fields)?;
    let tag = match form {
        Form::Record => Some(string_attr(&input.attrs, "tag")?.ok_or_else(|| Error::new(Span::call_site(), "NifRecord needs #[tag = \"name\"]"))?),
        _ => None,
    };
    let offset = usize::from(tag.is_some());
    let arity = fields.len() + offset;
    let members: Vec<&syn::Member> = fields.iter().map(|f| &f.member).collect();
    let atoms = fields.iter().map(|f| &f.atom);
    let indices = (0..fields.len()).map(|i| i + offset);
    let (check_tag, put_tag) = match &tag {
        Some(tag) => (
            quote!(#krate::derive_support::check_tag(&items[0], #tag, #name)?;),
            quote!(#krate::derive_support::atom(out, #tag);),
        ),
        None => (quote!(), quote!()),
    };
    let decode = quote! {
        let items = #krate::derive_support::tuple_items(term, #arity, #name)?;
        #check_tag
        ::core::result::Result::Ok(Self { #( #members: #krate::derive_support::field(&items[#indices], #name, #atoms)?, )* })
    };
    let encode = quote! {
        #krate::derive_support::tuple_header(out, #arity);
        #put_tag
        #( #krate::Encoder::encode(&self.#members, out); )*
    };
    Ok(impls(input, decode, encode))
}

fn enum_like(input: &DeriveInput, data: &syn::DataEnum, form: Form) -> Result<Tokens> {
    let krate = krate();
    let name = input.ident.to_string();
    let mut decode_arms = Vec::new();
    let mut encode_arms = Vec::new();
    let mut tries = Vec::new();
    for variant in &data.variants {
        let ident = &variant.ident;
        let atom = atom_name(&variant.attrs, snake_case(&ident.to_string()))?;
        let what = format!("{name}::{ident}");
        let fields = fields_of(&variant.fields)?;
        match (form, &variant.fields) {
            (Form::UnitEnum | Form::TaggedEnum, Fields::Unit) => {
                decode_arms.push(quote!(#krate::Term::Atom(a) if a.0 == #atom => return ::core::result::Result::Ok(Self::#ident),));
                encode_arms.push(quote!(Self::#ident => #krate::derive_support::atom(out, #atom),));
            }
            (Form::UnitEnum, _) => return Err(Error::new_spanned(variant, "NifUnitEnum variants have no fields")),
            (Form::TaggedEnum, Fields::Unnamed(_)) => {
                let arity = fields.len() + 1;
                let bindings: Vec<Ident> = (0..fields.len()).map(|i| format_ident!("v{}", i)).collect();
                let labels = (0..fields.len()).map(|i| i.to_string());
                let indices = 1..arity;
                decode_arms.push(quote! {
                    #krate::Term::Tuple(items) if items.len() == #arity && #krate::derive_support::atom_key(&items[0]) == ::core::option::Option::Some(#atom) => {
                        return ::core::result::Result::Ok(Self::#ident( #( #krate::derive_support::field(&items[#indices], #what, #labels)?, )* ));
                    }
                });
                encode_arms.push(quote! {
                    Self::#ident( #( #bindings ),* ) => {
                        #krate::derive_support::tuple_header(out, #arity);
                        #krate::derive_support::atom(out, #atom);
                        #( #krate::Encoder::encode(#bindings, out); )*
                    }
                });
            }
            (Form::TaggedEnum, Fields::Named(_)) => {
                let decode_fields = decode_named(&fields, quote!(Self::#ident), &what, quote!(pairs));
                decode_arms.push(quote! {
                    #krate::Term::Tuple(items) if items.len() == 2 && #krate::derive_support::atom_key(&items[0]) == ::core::option::Option::Some(#atom) => {
                        let pairs = #krate::derive_support::map_pairs(&items[1], #what)?;
                        return { #decode_fields };
                    }
                });
                let members: Vec<Ident> = fields.iter().map(|f| match &f.member { syn::Member::Named(i) => i.clone(), _ => unreachable!() }).collect();
                let encode_fields = encode_named(&fields, &[], |m| match m { syn::Member::Named(i) => quote!(#i), _ => unreachable!() });
                encode_arms.push(quote! {
                    Self::#ident { #( #members ),* } => {
                        #krate::derive_support::tuple_header(out, 2);
                        #krate::derive_support::atom(out, #atom);
                        #encode_fields
                    }
                });
            }
            (Form::UntaggedEnum, Fields::Unnamed(f)) if f.unnamed.len() == 1 => {
                let ty = &fields[0].ty;
                tries.push(quote! {
                    if let ::core::result::Result::Ok(v) = <#ty as #krate::Decoder>::decode(term) {
                        return ::core::result::Result::Ok(Self::#ident(v));
                    }
                });
                encode_arms.push(quote!(Self::#ident(v) => #krate::Encoder::encode(v, out),));
            }
            (Form::UntaggedEnum, _) => return Err(Error::new_spanned(variant, "NifUntaggedEnum variants have exactly one unnamed field")),
            _ => unreachable!("enum forms only"),
        }
    }
    let names: Vec<String> = data.variants.iter().map(|v| v.ident.to_string()).collect();
    let decode = if form == Form::UntaggedEnum {
        let message = format!("expected a {name} (one of {}), got ", names.join(", "));
        quote! {
            #( #tries )*
            ::core::result::Result::Err(#krate::ArgError::BadArg(::std::format!("{}{}", #message, #krate::kind(term))))
        }
    } else {
        let message = format!("expected a {name}, got ");
        quote! {
            match term {
                #( #decode_arms )*
                _ => {}
            }
            ::core::result::Result::Err(#krate::ArgError::BadArg(#krate::derive_support::not_a_variant(#message, term)))
        }
    };
    let encode = if encode_arms.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #( #encode_arms )* })
    };
    Ok(impls(input, decode, encode))
}

// --- #[native] ------------------------------------------------------------------------------

/// Marks a function as a native, with what the node and wrapper generators can know of it:
/// `#[native]`, `#[native(slow)]`, `#[native(name = "valid?")]`, `#[native(slow, name =
/// "...")]`. It is then listed by name alone: `natives!(NATIVES = [add, crunch])`. Its
/// entry records its argument names and Rust types, its result type and its doc comment
/// (`rustelixir describe MODULE`, `mix rustelixir.gen.natives --from-module`).
#[proc_macro_attribute]
pub fn native(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as syn::ItemFn);
    native_entry(args.into(), &function).unwrap_or_else(Error::into_compile_error).into()
}

fn native_entry(args: Tokens, function: &syn::ItemFn) -> Result<Tokens> {
    let krate = krate();
    let mut slow = false;
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("slow") {
            slow = true;
            Ok(())
        } else if meta.path.is_ident("quick") {
            Ok(())
        } else if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse::<LitStr>()?.value());
            Ok(())
        } else {
            Err(meta.error("expected `slow`, `quick` or `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    let ident = &function.sig.ident;
    if !function.sig.generics.params.is_empty() {
        return Err(Error::new_spanned(&function.sig, "a native is a plain function: no generics"));
    }
    let asynchronous = function.sig.asyncness.is_some();
    if asynchronous && slow {
        return Err(Error::new_spanned(&function.sig, "an async native is neither quick nor slow: it runs on the node's runtime"));
    }
    let name = name.unwrap_or_else(|| ident.to_string());
    let flags = match (slow, asynchronous) {
        (_, true) => quote!(#krate::FLAG_ASYNC),
        (true, _) => quote!(#krate::FLAG_SLOW),
        _ => quote!(0),
    };
    // An argument of type `&[u8]` or `&str` borrows the binary from the call's bytes.
    let borrowed: Vec<Option<Tokens>> = function
        .sig
        .inputs
        .iter()
        .map(|input| match input {
            syn::FnArg::Typed(pat) => match &*pat.ty {
                syn::Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
                    syn::Type::Slice(slice) if quote!(#slice).to_string().replace(' ', "") == "[u8]" => Some(quote!(borrow_bytes)),
                    syn::Type::Path(p) if p.path.is_ident("str") => Some(quote!(borrow_str)),
                    _ => None,
                },
                _ => None,
            },
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let borrows = borrowed.iter().any(Option::is_some);
    if asynchronous && borrows {
        return Err(Error::new_spanned(&function.sig, "an async native's arguments are owned (its task outlives the call's bytes): take a Vec<u8> or a String"));
    }
    let (arity, run) = if asynchronous {
        (quote!(#krate::async_arity_of(&super::#ident)), quote!(#krate::run_async(&super::#ident, frame)))
    } else if borrows {
        let nargs = borrowed.len();
        let names: Vec<Ident> = (0..nargs).map(|i| format_ident!("arg{}", i)).collect();
        let decodes = borrowed.iter().zip(&names).enumerate().map(|(i, (how, name))| {
            let index = i + 1;
            match how {
                Some(borrow) => quote!(let Some(#name) = #krate::#borrow(args[#i], #index, out) else { return };),
                None => quote!(let Some(#name) = #krate::decode_arg(args[#i], #index, out) else { return };),
            }
        });
        let arity = nargs as u32;
        (
            quote!(#arity),
            quote!(#krate::run_with(frame, #arity, |args, out| {
                #( #decodes )*
                #krate::IntoReply::write_reply(super::#ident(#( #names ),*), out)
            })),
        )
    } else {
        (quote!(#krate::arity_of(&super::#ident)), quote!(#krate::run(&super::#ident, frame)))
    };
    // `Vec < u8 >` as written, `Vec<u8>`; a space stays only between two words (`&'a str`).
    let compact = |tokens: Tokens| {
        let text = tokens.to_string();
        let chars: Vec<char> = text.chars().collect();
        let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
        (0..chars.len()).filter(|&i| chars[i] != ' ' || (i > 0 && word(chars.get(i - 1)) && word(chars.get(i + 1)))).map(|i| chars[i]).collect::<String>()
    };
    let mut arg_names = Vec::new();
    let mut arg_types = Vec::new();
    for input in &function.sig.inputs {
        match input {
            syn::FnArg::Typed(pat) => {
                let arg = match &*pat.pat {
                    syn::Pat::Ident(p) => p.ident.to_string().trim_start_matches('_').to_string(),
                    _ => format!("arg{}", arg_names.len() + 1),
                };
                arg_names.push(arg);
                let ty = &pat.ty;
                arg_types.push(compact(quote!(#ty)));
            }
            syn::FnArg::Receiver(r) => return Err(Error::new_spanned(r, "a native takes no self")),
        }
    }
    let returns = match &function.sig.output {
        syn::ReturnType::Default => "()".to_string(),
        syn::ReturnType::Type(_, ty) => compact(quote!(#ty)),
    };
    let doc = function
        .attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                path,
                value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }),
                ..
            }) if path.is_ident("doc") => Some(s.value().strip_prefix(' ').map(str::to_string).unwrap_or_else(|| s.value())),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let vis = &function.vis;
    let nargs = arg_names.len();
    Ok(quote! {
        #function

        /// The natives table entry of the native of the same name (`#[native]`).
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #vis mod #ident {
            pub const ENTRY: #krate::NativeEntry = #krate::NativeEntry {
                name: #name.as_ptr(),
                name_len: #name.len(),
                arity: #arity,
                flags: #flags,
                call: {
                    extern "C" fn entry(frame: *const #krate::CallFrame) {
                        // SAFETY: the node calls with a valid frame.
                        unsafe { #run }
                    }
                    entry
                },
                meta: &#krate::NativeMeta {
                    doc: #krate::Slice::of_str(#doc),
                    returns: #krate::Slice::of_str(#returns),
                    args: {
                        const ARGS: &[#krate::ArgMeta] = &[
                            #( #krate::ArgMeta { name: #krate::Slice::of_str(#arg_names), ty: #krate::Slice::of_str(#arg_types) } ),*
                        ];
                        ARGS.as_ptr()
                    },
                    nargs: #nargs,
                },
            };
        }
    })
}
