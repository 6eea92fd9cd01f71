//! The `exo-discovery` command line: run the agent, make a key, announce a node, list and watch
//! peers. The commands are in the library's `cli` layer (`src/cli/`).

fn main() -> std::process::ExitCode {
    exo_discovery::cli_main()
}
