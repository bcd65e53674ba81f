fn main() {
    std::process::exit(cto_ledger::cli::main());
}
