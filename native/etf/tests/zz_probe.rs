use rustelixir_etf::*;
#[test]
fn probe_fun_size_short() {
    // NEW_FUN_EXT with size 29 (only the fixed fields) but 1 free var and the rest following.
    let mut b = vec![131, 112, 0, 0, 0, 29, 1];
    b.extend([7u8; 16]);
    b.extend(0u32.to_be_bytes());
    b.extend(1u32.to_be_bytes());
    b.extend([119, 1, b'm', 97, 0, 97, 0]);
    b.extend([88, 119, 3, b'a', b'@', b'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    b.extend([97, 1]);
    println!("{:?}", b);
    let r = std::panic::catch_unwind(|| decode(&b));
    println!("{r:?}");
}
