//! `twofold generate-docs DIR` (hidden): the man page and shell completions, generated from
//! the one clap definition so they never disagree with `--help`.
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateDocsArgs};
use crate::error::CliError;

fn io(what: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        what: format!("write {}", what.display()),
        source,
    }
}

pub fn run(args: GenerateDocsArgs) -> Result<(), CliError> {
    let man_dir = args.dir.join("man1");
    let completions = args.dir.join("completions");
    for dir in [&man_dir, &completions] {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(io(&man_dir))?;
    let man = man_dir.join("twofold.1");
    fs::write(&man, page).map_err(io(&man))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = Cli::command();
        clap_complete::generate_to(shell, &mut command, "twofold", &completions)
            .map_err(io(&completions))?;
    }
    println!(
        "wrote {} and completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}
