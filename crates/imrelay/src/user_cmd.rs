//! `imrelay user hash`: the argon2id PHC string for a `[[console.users]]`
//! `password_hash`. The password is read from standard input (its first
//! line), or asked for without echo on a terminal; it is never an argument,
//! so it stays out of shell history and the process list.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print the argon2id hash of a password for `[[console.users]] password_hash`.
    #[command(after_help = "\
Examples:
  imrelay user hash                       # asks for the password (not echoed)
  printf '%s' \"$PASSWORD\" | imrelay user hash")]
    Hash,
}

pub fn run(cmd: UserCommand) -> ExitCode {
    match cmd {
        UserCommand::Hash => hash(),
    }
}

fn hash() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        let first = match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(e) => return fail(&format!("cannot read the password: {e}")),
        };
        match rpassword::prompt_password("Again: ") {
            Ok(again) if again == first => first,
            Ok(_) => return fail("the two passwords differ"),
            Err(e) => return fail(&format!("cannot read the password: {e}")),
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            return fail(&format!("cannot read the password from stdin: {e}"));
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return fail("the password is empty");
    }
    match imrelay_gateway::console::auth::hash_password(&password) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot hash the password: {e}")),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(1)
}
