//! The long soak (tests/support/soak.rs): `attach`, `logs -f` and `forward` at once through N
//! seeded random kernel-level faults of the lengths issue 17 describes (client stopped up to 30 s),
//! then the table for the closing note. `bench/soak.sh [N] [SEED]`. Under `cargo test` it runs
//! two short faults, so it cannot rot (the suite's 20-fault soak is tests/integration/netfaults.rs).

#[path = "../tests/support/mod.rs"]
mod support;

fn main() {
    let args = support::bench_args::BenchArgs::from_env();
    let full = args.full();
    let faults: usize = args.value("--faults").unwrap_or(if full { 100 } else { 2 });
    let seed = args.seed();
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
