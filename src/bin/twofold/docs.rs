//! `twofold generate-docs DIR` (hidden): the man pages and shell completions, generated from
//! the one clap definition so they never disagree with `--help`.
//!
//! Pages: `twofold(1)`, and one per subcommand, nested ones included (`twofold-enroll(1)`,
//! `twofold-import-oath(1)`, …): `twofold(1)` lists them by those names, so each must exist.
//! The policy file and the module have hand-written pages (`doc/twofold.toml.5`,
//! `doc/pam_twofold.8`); every generated page points to them.
//!
//! Run as root (scripts/install.sh), so its files are created like every file the CLI writes
//! (src/secure_file.rs): new files only, `man1/` and `completions/` opened without following a
//! link, so nothing planted in DIR can redirect the write or have an existing file rewritten.
//! They hold nothing secret: mode 0644.
#![forbid(unsafe_code)]

use std::fs;

use clap::{CommandFactory, ValueHint};
use clap_complete::{Generator, Shell};
use pam_twofold::secure_file::{Access, CreateError, Dir, NewFile};

use crate::cli::{Cli, GenerateDocsArgs};
use crate::error::CliError;

const NAME: &str = "twofold";

fn docs_error(e: CreateError) -> CliError {
    CliError::output(e, false)
}

/// The command tree as the man pages show it: built (so subcommands carry their full names,
/// `twofold-import-oath`), without the `help` subcommand, which has no page of its own.
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page: (file name, roff), the top-level page first, then the subcommands depth first.
/// Hidden commands (generate-docs) get none.
fn man_pages() -> Result<Vec<(String, Vec<u8>)>, CliError> {
    fn walk(
        cmd: &clap::Command,
        parent: Option<&str>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), CliError> {
        let man = clap_mangen::Man::new(cmd.clone())
            .source(format!("{NAME} {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page).map_err(|source| CliError::Io {
            what: format!("render the man page {}", man.get_filename()),
            source,
        })?;
        page.extend_from_slice(see_also(parent).as_bytes());
        out.push((man.get_filename(), page));
        let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, Some(name), out)?;
        }
        Ok(())
    }
    let mut pages = Vec::new();
    walk(&man_command(), None, &mut pages)?;
    Ok(pages)
}

/// The SEE ALSO section: the parent command's page (for a subcommand), the policy file's and
/// the module's.
fn see_also(parent: Option<&str>) -> String {
    let mut refs: Vec<String> = Vec::new();
    if let Some(parent) = parent {
        refs.push(format!(".BR {} (1),", parent.replace('-', "\\-")));
    }
    refs.push(".BR twofold.toml (5),".into());
    refs.push(".BR pam_twofold (8)".into());
    format!(".SH \"SEE ALSO\"\n{}\n", refs.join("\n"))
}

/// The command the completions describe. clap_complete offers hidden subcommands too, and
/// clap cannot remove one: so the tree is rebuilt without them (generate-docs). Every USER
/// argument is hinted as a user name (zsh and fish complete account names from it).
fn completion_command() -> clap::Command {
    let top = Cli::command();
    clap::Command::new(NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .args(top.get_arguments().cloned())
        .subcommands(
            top.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .cloned()
                .map(hint_user_names),
        )
}

fn hint_user_names(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_subcommands(hint_user_names);
    if cmd.get_arguments().any(|a| a.get_id() == "user") {
        cmd.mut_arg("user", |a| a.value_hint(ValueHint::Username))
    } else {
        cmd
    }
}

/// Bash has no user-name hint: a wrapper around clap's `_twofold` offers account names
/// (`getent passwd`) right after the subcommands whose first argument is USER.
fn bash_user_names(cmd: &clap::Command) -> String {
    let subcommands: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| {
            s.get_positionals()
                .next()
                .is_some_and(|a| a.get_id() == "user")
        })
        .map(|s| s.get_name())
        .collect();
    format!(
        r#"
# USER arguments complete with account names (added by twofold's docs generator).
_twofold_users() {{
    _twofold "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i sub="" at=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --config) ((i++)) ;;
            -*) ;;
            *) sub="${{COMP_WORDS[i]}}"; at=$i; break ;;
        esac
    done
    if [[ $at -gt 0 && $((at + 1)) -eq $COMP_CWORD && "$cur" != -* ]]; then
        case " {list} " in
            *" $sub "*) COMPREPLY=( $(compgen -W "$(getent passwd | cut -d: -f1)" -- "$cur") ) ;;
        esac
    fi
}}
complete -F _twofold_users -o bashdefault -o default twofold
"#,
        list = subcommands.join(" ")
    )
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
    let mut files = Vec::new();
    let pages = man_pages()?;
    let count = pages.len();
    for (name, page) in pages {
        let file = NewFile::create_in(&man_dir, &name, Access::Public).map_err(docs_error)?;
        files.push((file, page));
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let file = NewFile::create_in(&completions, &shell.file_name(NAME), Access::Public)
            .map_err(docs_error)?;
        let mut script = Vec::new();
        let mut cmd = completion_command();
        clap_complete::generate(shell, &mut cmd, NAME, &mut script);
        if shell == Shell::Bash {
            script.extend_from_slice(bash_user_names(&cmd).as_bytes());
        }
        files.push((file, script));
    }
    for (file, bytes) in files {
        file.write(&bytes).map_err(docs_error)?;
    }
    outln!(
        "wrote {count} man pages in {} and completions in {}",
        man_dir.path().display(),
        completions.path().display()
    )
}
