//! The derives, every form both ways (Rust value -> term -> Rust value), generics and
//! renames included, and the badarg a term of the wrong shape gets (naming the field).

use rustelixir_nif::etf::{self, Term};
use rustelixir_nif::{
    ArgError, Decoder, Encoder, NifException, NifMap, NifRecord, NifStruct, NifTaggedEnum, NifTuple, NifUnitEnum,
    NifUntaggedEnum,
};

#[derive(Debug, PartialEq, NifStruct)]
#[module = "MyApp.Point"]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Debug, PartialEq, NifException)]
#[module = "MyApp.Oops"]
struct Oops {
    message: String,
}

#[derive(Debug, PartialEq, NifMap)]
struct Settings {
    name: String,
    #[rustelixir(rename = "max-size")]
    max_size: u32,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, NifTuple)]
struct Pair(i64, String);

#[derive(Debug, PartialEq, NifRecord)]
#[tag = "user"]
struct User {
    name: String,
    age: u8,
}

#[derive(Debug, PartialEq, NifUnitEnum)]
enum Color {
    Red,
    DarkBlue,
    #[rustelixir(rename = "GREEN")]
    Green,
}

#[derive(Debug, PartialEq, NifTaggedEnum)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(f64, f64),
    Labeled { label: String, sides: u32 },
}

#[derive(Debug, PartialEq, NifUntaggedEnum)]
enum Num {
    Int(i64),
    Text(String),
}

#[derive(Debug, PartialEq, NifMap)]
struct Boxed<T> {
    value: T,
}

#[derive(Debug, PartialEq, NifTaggedEnum)]
enum Either<L, R> {
    Left(L),
    Right(R),
}

fn to_term(v: &impl Encoder) -> Term {
    let mut out = Vec::new();
    v.encode(&mut out);
    etf::decode::decode_at_with(&out, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap().0
}

fn a(name: &str) -> Term {
    Term::atom(name)
}

fn b(s: &str) -> Term {
    Term::Binary(s.as_bytes().to_vec())
}

fn map(pairs: &[(&str, Term)]) -> Term {
    Term::Map(pairs.iter().map(|(k, v)| (a(k), v.clone())).collect())
}

/// `value` encodes as `term` (maps compared as sets of pairs) and `term` decodes back.
fn both_ways<T: Encoder + Decoder + PartialEq + std::fmt::Debug>(value: T, term: Term) {
    let sorted = |t: Term| match &t {
        Term::Map(pairs) => {
            let mut pairs = pairs.clone();
            pairs.sort_by_key(|p| format!("{p:?}"));
            Term::Map(pairs)
        }
        _ => t,
    };
    assert_eq!(sorted(to_term(&value)), sorted(term.clone()));
    assert_eq!(T::decode(&term).unwrap(), value);
}

fn badarg<T: Decoder + std::fmt::Debug>(term: Term) -> String {
    match T::decode(&term) {
        Err(ArgError::BadArg(message)) => message,
        other => panic!("not a badarg: {other:?}"),
    }
}

#[test]
fn every_form_both_ways() {
    both_ways(Point { x: 1, y: -2 }, map(&[("__struct__", a("Elixir.MyApp.Point")), ("x", Term::Int(1)), ("y", Term::Int(-2))]));
    both_ways(
        Oops { message: "no".into() },
        map(&[("__struct__", a("Elixir.MyApp.Oops")), ("__exception__", a("true")), ("message", b("no"))]),
    );
    both_ways(
        Settings { name: "n".into(), max_size: 9, tags: vec!["t".into()] },
        map(&[("name", b("n")), ("max-size", Term::Int(9)), ("tags", Term::List(vec![b("t")]))]),
    );
    both_ways(Pair(7, "s".into()), Term::Tuple(vec![Term::Int(7), b("s")]));
    both_ways(User { name: "jo".into(), age: 30 }, Term::Tuple(vec![a("user"), b("jo"), Term::Int(30)]));
    both_ways(Color::Red, a("red"));
    both_ways(Color::DarkBlue, a("dark_blue"));
    both_ways(Color::Green, a("GREEN"));
    both_ways(Shape::Empty, a("empty"));
    both_ways(Shape::Circle(1.5), Term::Tuple(vec![a("circle"), Term::Float(1.5)]));
    both_ways(Shape::Rect(1.0, 2.0), Term::Tuple(vec![a("rect"), Term::Float(1.0), Term::Float(2.0)]));
    both_ways(
        Shape::Labeled { label: "tri".into(), sides: 3 },
        Term::Tuple(vec![a("labeled"), map(&[("label", b("tri")), ("sides", Term::Int(3))])]),
    );
    both_ways(Num::Int(5), Term::Int(5));
    both_ways(Num::Text("five".into()), b("five"));
    both_ways(Boxed { value: Color::Red }, map(&[("value", a("red"))]));
    both_ways(Either::<i64, String>::Right("r".into()), Term::Tuple(vec![a("right"), b("r")]));
    // Extra keys in a map are ignored, as Rustler ignores them.
    assert_eq!(Point::decode(&map(&[("__struct__", a("Elixir.MyApp.Point")), ("x", Term::Int(1)), ("y", Term::Int(2)), ("z", Term::Int(3))])).unwrap(), Point { x: 1, y: 2 });
}

#[test]
fn a_wrong_shape_is_a_badarg_that_names_the_field() {
    let point = |y: Term| map(&[("__struct__", a("Elixir.MyApp.Point")), ("x", Term::Int(1)), ("y", y)]);
    assert_eq!(badarg::<Point>(point(a("no"))), "MyApp.Point field y: expected an integer, got an atom");
    assert_eq!(badarg::<Point>(map(&[("__struct__", a("Elixir.MyApp.Point")), ("x", Term::Int(1))])), "MyApp.Point is missing field y");
    assert_eq!(badarg::<Point>(map(&[("__struct__", a("Elixir.Other")), ("x", Term::Int(1))])), "expected a %MyApp.Point{}, got a %Other{}");
    assert_eq!(badarg::<Point>(map(&[("x", Term::Int(1)), ("y", Term::Int(1))])), "expected a %MyApp.Point{}, got a map that is no struct");
    assert_eq!(badarg::<Point>(Term::Int(1)), "expected a MyApp.Point (a map), got an integer");
    assert_eq!(
        badarg::<Settings>(map(&[("name", b("n")), ("max-size", b("x")), ("tags", Term::List(vec![]))])),
        "Settings field max-size: expected an integer, got a binary"
    );
    assert_eq!(badarg::<Pair>(Term::Tuple(vec![Term::Int(1)])), "expected a Pair (a tuple of 2), got a tuple of 1");
    assert_eq!(badarg::<Pair>(Term::Tuple(vec![Term::Int(1), Term::Int(2)])), "Pair field 1: expected a binary, got an integer");
    assert_eq!(badarg::<User>(Term::Tuple(vec![a("admin"), b("jo"), Term::Int(1)])), "expected a User (a tuple tagged user), got another tag");
    assert_eq!(badarg::<User>(Term::Tuple(vec![a("user"), b("jo"), Term::Int(300)])), "User field age: integer 300 out of range for u8 (0..=255)");
    assert_eq!(badarg::<Color>(a("purple")), "expected a Color, got the atom purple");
    assert_eq!(badarg::<Shape>(Term::Tuple(vec![a("circle"), a("x")])), "Shape::Circle field 0: expected a number, got an atom");
    assert_eq!(badarg::<Shape>(Term::Tuple(vec![a("hexagon"), Term::Int(6)])), "expected a Shape, got a tuple of 2 tagged hexagon");
    assert_eq!(
        badarg::<Shape>(Term::Tuple(vec![a("labeled"), map(&[("label", b("l"))])])),
        "Shape::Labeled is missing field sides"
    );
    assert_eq!(badarg::<Num>(a("x")), "expected a Num (one of Int, Text), got an atom");
    assert_eq!(badarg::<Boxed<Color>>(map(&[("value", a("mauve"))])), "Boxed field value: expected a Color, got the atom mauve");
}
