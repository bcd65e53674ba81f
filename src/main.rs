fn main() {
    std::process::exit(cto_ledger::run_cli());
}
