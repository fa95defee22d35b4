//! `twofold generate-docs DIR` (hidden): the man page and shell completions, generated from
//! the one clap definition so they never disagree with `--help`.
//!
//! Run as root (scripts/install.sh), so its files are created like every file the CLI writes
//! (src/secure_file.rs): new files only, `man1/` and `completions/` opened without following a
//! link, so nothing planted in DIR can redirect the write or have an existing file rewritten.
//! They hold nothing secret: mode 0644.
#![forbid(unsafe_code)]

use std::fs;

use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use pam_twofold::secure_file::{Access, CreateError, Dir, NewFile};

use crate::cli::{Cli, GenerateDocsArgs};
use crate::error::CliError;

const NAME: &str = "twofold";

fn docs_error(e: CreateError) -> CliError {
    CliError::output(e, false)
}

fn man_page() -> Result<Vec<u8>, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|source| CliError::Io {
            what: "render the man page".into(),
            source,
        })?;
    Ok(page)
}

pub fn run(args: GenerateDocsArgs) -> Result<(), CliError> {
    // DIR itself is the admin's choice, wherever its path leads.
    fs::create_dir_all(&args.dir).map_err(|source| CliError::Io {
        what: format!("create {}", args.dir.display()),
        source,
    })?;
    let top = Dir::open(&args.dir).map_err(docs_error)?;
    let man_dir = top.subdir("man1").map_err(docs_error)?;
    let completions = top.subdir("completions").map_err(docs_error)?;

    // Every name is claimed before any is written: a refusal leaves no half set behind.
    let man =
        NewFile::create_in(&man_dir, &format!("{NAME}.1"), Access::Public).map_err(docs_error)?;
    let man_path = man.path().to_owned();
    let mut files = vec![(man, man_page()?)];
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let file = NewFile::create_in(&completions, &shell.file_name(NAME), Access::Public)
            .map_err(docs_error)?;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
        files.push((file, script));
    }
    for (file, bytes) in files {
        file.write(&bytes).map_err(docs_error)?;
    }
    outln!(
        "wrote {} and completions in {}",
        man_path.display(),
        completions.path().display()
    )
}
