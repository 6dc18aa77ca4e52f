//! The long soak (tests/support/soak.rs): `attach`, `logs -f` and `forward` at once through N
//! seeded random kernel-level faults of the lengths issue 17 describes (client stopped up to 30 s),
//! then the table for the closing note. `bench/soak.sh [N] [SEED]`. Under `cargo test` it runs
//! two short faults, so it cannot rot (the suite's 20-fault soak is tests/integration/netfaults.rs).

#[path = "../tests/support/mod.rs"]
mod support;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let num = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse::<u64>().ok()
    };
    let faults = num("--faults").unwrap_or(if full { 100 } else { 2 }) as usize;
    let seed = num("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    println!("soak seed {seed}");
    let report = support::soak::soak(
        faults,
        seed,
        if full {
            support::soak::LONG
        } else {
            support::soak::SHORT
        },
    );
    println!("{}", report.table());
    std::process::exit(if report.clean() { 0 } else { 1 });
}
