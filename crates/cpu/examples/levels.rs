//! Prints the kernel levels this CPU supports, one name per line (slowest first), and the
//! one the process would run at on stderr. CI runs the test suite once per line.
//!
//! `cargo run -q -p cpu --example levels`

fn main() {
    for cpu in cpu::Cpu::available() {
        println!("{}", cpu.level());
    }
    match cpu::Cpu::init() {
        Ok(active) => eprintln!("active: {active}"),
        Err(e) => eprintln!("active: none ({e})"),
    }
}
