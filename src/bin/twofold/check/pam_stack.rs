//! A service's `auth` stack as Linux-PAM builds it from /etc/pam.d: comments and `\` line
//! continuations, `[value=action ...]` controls, `@include` (every type of another file),
//! `include` (that file's lines of the same type, inline: jumps count their modules) and
//! `substack` (one entry for jumps; `done` and `die` end only the substack). An include that
//! cannot be read becomes an entry that always fails, as Linux-PAM makes it.
//!
//! Pure: files come through a reader, so the unit tests need no file system.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

/// Linux-PAM's limit on nested includes (PAM_SUBSTACK_MAX_LEVEL); also stops include loops.
const MAX_DEPTH: usize = 16;
/// Lines read for one stack, includes counted each time: a file that includes another a few
/// times per level would otherwise expand to millions of lines before the depth limit.
/// It also bounds the walk's recursion (one level per line).
const MAX_LINES: usize = 2_000;

/// Where a line is: file and (first physical) line number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What Linux-PAM does after a module returned a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Bad,
    Die,
    Ok,
    Done,
    Reset,
    /// Skip the next N entries.
    Jump(usize),
}

/// A control: action per return value name (`success`, `ignore`, `auth_err`, ...), and the
/// action of every value not named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actions {
    named: Vec<(String, Action)>,
    default: Action,
}

impl Actions {
    pub fn on(&self, value: &str) -> Action {
        self.named
            .iter()
            .find(|(name, _)| name == value)
            .map_or(self.default, |(_, action)| *action)
    }

    fn keyword(word: &str) -> Option<Self> {
        use Action::*;
        let (success, ignore, default) = match word {
            "required" => (Ok, Some(Ignore), Bad),
            "requisite" => (Ok, Some(Ignore), Die),
            "optional" => (Ok, None, Ignore),
            "sufficient" => (Done, None, Ignore),
            _ => return None,
        };
        let mut named = vec![
            ("success".to_owned(), success),
            ("new_authtok_reqd".to_owned(), success),
        ];
        if let Some(ignore) = ignore {
            named.push(("ignore".to_owned(), ignore));
        }
        Some(Self { named, default })
    }

    /// `[success=1 default=ignore]` (without the brackets). Values not named and no
    /// `default=` are `bad`, as Linux-PAM has it.
    fn bracket(inner: &str) -> Result<Self, String> {
        let mut named = Vec::new();
        let mut default = Action::Bad;
        for pair in inner.split_whitespace() {
            let (name, action) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not value=action"))?;
            let action = match action {
                "ignore" => Action::Ignore,
                "bad" => Action::Bad,
                "die" => Action::Die,
                "ok" => Action::Ok,
                "done" => Action::Done,
                "reset" => Action::Reset,
                n => Action::Jump(n.parse().map_err(|_| format!("unknown action '{n}'"))?),
            };
            match name {
                "default" => default = action,
                _ => named.push((name.to_owned(), action)),
            }
        }
        Ok(Self { named, default })
    }
}

/// One module line of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub at: At,
    /// The control as written (`required`, `[success=1 default=ignore]`).
    pub control: String,
    pub actions: Actions,
    /// As written: `pam_unix.so` or an absolute path.
    pub path: String,
    pub args: Vec<String>,
    /// `-auth`: Linux-PAM skips the line silently when the module is not installed.
    pub silent: bool,
}

impl Module {
    /// `pam_unix` for `/lib/x86_64-linux-gnu/security/pam_unix.so`.
    pub fn name(&self) -> &str {
        let base = self.path.rsplit('/').next().unwrap_or(&self.path);
        base.strip_suffix(".so").unwrap_or(base)
    }

    pub fn is_twofold(&self) -> bool {
        matches!(self.name(), "pam_twofold" | "libpam_twofold")
    }

    pub fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Module(Module),
    Substack {
        at: At,
        entries: Vec<Entry>,
    },
    /// An include Linux-PAM cannot read: an entry that always fails.
    Broken {
        at: At,
    },
}

impl Entry {
    /// Whether the entry is, or holds, the module line at `at`.
    pub fn holds(&self, at: &At) -> bool {
        match self {
            Entry::Module(m) => &m.at == at,
            Entry::Substack { entries, .. } => entries.iter().any(|e| e.holds(at)),
            Entry::Broken { .. } => false,
        }
    }
}

/// A problem found while reading the files (reported by `check`, independent of twofold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadProblem {
    pub at: At,
    pub kind: ProblemKind,
    pub target: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// `@include FILE` of a file that does not exist: pam_start fails, every login fails.
    AtIncludeMissing,
    /// `auth include|substack FILE` of a missing file: the auth stack always fails.
    IncludeMissing,
    /// A line Linux-PAM cannot parse: it always fails.
    Unparsable,
    /// The stack, includes counted each time they are met, is longer than [`MAX_LINES`]: not
    /// read beyond, judged as failing there.
    TooLong,
}

/// The auth stack of one service file, with what went wrong reading it.
#[derive(Clone, Debug, Default)]
pub struct Stack {
    pub entries: Vec<Entry>,
    pub problems: Vec<ReadProblem>,
}

impl Stack {
    /// Every module line, depth first, in the order Linux-PAM would call them.
    pub fn modules(&self) -> Vec<&Module> {
        fn walk<'a>(entries: &'a [Entry], out: &mut Vec<&'a Module>) {
            for entry in entries {
                match entry {
                    Entry::Module(m) => out.push(m),
                    Entry::Substack { entries, .. } => walk(entries, out),
                    Entry::Broken { .. } => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.entries, &mut out);
        out
    }
}

/// Reads a file's text; `None` when it does not exist or cannot be read.
pub type Reader<'a> = &'a dyn Fn(&Path) -> Option<String>;

/// Builds the auth stack of `file` (a service file in `dir`).
pub fn auth_stack(dir: &Path, file: &Path, read: Reader<'_>) -> Stack {
    let mut stack = Stack::default();
    let text = read(file).unwrap_or_default();
    let mut builder = Builder {
        dir,
        read,
        problems: &mut stack.problems,
        lines_left: MAX_LINES,
    };
    stack.entries = builder.file(file, &text, 0);
    stack
}

struct Builder<'a, 'b> {
    dir: &'a Path,
    read: Reader<'a>,
    problems: &'b mut Vec<ReadProblem>,
    lines_left: usize,
}

impl Builder<'_, '_> {
    fn file(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (line, words) in logical_lines(text) {
            let at = At {
                file: path.to_owned(),
                line,
            };
            if self.lines_left == 0 {
                // Beyond any real stack: judged as a line that always fails, and reported.
                self.problems.push(ReadProblem {
                    at: at.clone(),
                    kind: ProblemKind::TooLong,
                    target: MAX_LINES.to_string(),
                });
                entries.push(Entry::Broken { at });
                break;
            }
            self.lines_left -= 1;
            self.line(at, &words, depth, &mut entries);
        }
        entries
    }

    fn line(&mut self, at: At, words: &[String], depth: usize, out: &mut Vec<Entry>) {
        let Some(first) = words.first() else { return };
        if first == "@include" {
            let target = words.get(1).cloned().unwrap_or_default();
            return self.include(at, &target, depth, ProblemKind::AtIncludeMissing, out);
        }
        let (kind, silent) = match first.strip_prefix('-') {
            Some(kind) => (kind, true),
            None => (first.as_str(), false),
        };
        if kind != "auth" {
            return;
        }
        let control = words.get(1).map(String::as_str).unwrap_or_default();
        let target = words.get(2).cloned().unwrap_or_default();
        match control {
            "include" => self.include(at, &target, depth, ProblemKind::IncludeMissing, out),
            "substack" => {
                let mut inner = Vec::new();
                self.include(
                    at.clone(),
                    &target,
                    depth,
                    ProblemKind::IncludeMissing,
                    &mut inner,
                );
                out.push(Entry::Substack { at, entries: inner });
            }
            _ => out.push(self.module(at, control, words, silent)),
        }
    }

    fn module(&mut self, at: At, control: &str, words: &[String], silent: bool) -> Entry {
        let actions = match control.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
            Some(inner) => Actions::bracket(inner),
            None => Actions::keyword(control).ok_or_else(|| format!("unknown control '{control}'")),
        };
        match (actions, words.get(2)) {
            (Ok(actions), Some(path)) => Entry::Module(Module {
                at,
                control: control.to_owned(),
                actions,
                path: path.clone(),
                args: words[3..].to_vec(),
                silent,
            }),
            (actions, _) => {
                let target = actions.err().unwrap_or_else(|| "no module named".into());
                self.problems.push(ReadProblem {
                    at: at.clone(),
                    kind: ProblemKind::Unparsable,
                    target,
                });
                Entry::Broken { at }
            }
        }
    }

    fn include(
        &mut self,
        at: At,
        target: &str,
        depth: usize,
        kind: ProblemKind,
        out: &mut Vec<Entry>,
    ) {
        let path = if target.starts_with('/') {
            PathBuf::from(target)
        } else {
            self.dir.join(target)
        };
        let text = (!target.is_empty() && depth < MAX_DEPTH)
            .then(|| (self.read)(&path))
            .flatten();
        match text {
            Some(text) => out.extend(self.file(&path, &text, depth + 1)),
            None => {
                self.problems.push(ReadProblem {
                    at: at.clone(),
                    kind,
                    target: path.display().to_string(),
                });
                out.push(Entry::Broken { at });
            }
        }
    }
}

/// The logical lines of a PAM file: (first physical line number, words). Comments start at
/// `#`; a line ending in `\` goes on; `[...]` is one word (with `\]` inside).
pub fn logical_lines(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default();
        if pending.is_empty() {
            start = index + 1;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let words = words(&pending);
                if !words.is_empty() {
                    out.push((start, words));
                }
                pending.clear();
            }
        }
    }
    out
}

fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        let mut depth = 0;
        while let Some(&c) = chars.peek() {
            match c {
                '\\' if depth > 0 => {
                    chars.next();
                    word.extend(chars.next());
                    continue;
                }
                '[' => depth += 1,
                ']' if depth > 0 => depth -= 1,
                c if c.is_whitespace() && depth == 0 => break,
                _ => {}
            }
            word.push(c);
            chars.next();
        }
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn stack(files: &[(&str, &str)], top: &str) -> Stack {
        let map: HashMap<PathBuf, String> = files
            .iter()
            .map(|(name, text)| (Path::new("/p").join(name), text.to_string()))
            .collect();
        let read = move |p: &Path| map.get(p).cloned();
        auth_stack(Path::new("/p"), &Path::new("/p").join(top), &read)
    }

    #[test]
    fn words_keep_brackets_and_lines_join() {
        let lines = logical_lines(
            "# comment\nauth [success=1 default=ignore] pam_unix.so nullok # tail\n\
             auth required \\\n  pam_x.so [msg=a b\\] c]\n",
        );
        assert_eq!(lines[0].0, 2);
        assert_eq!(
            lines[0].1,
            [
                "auth",
                "[success=1 default=ignore]",
                "pam_unix.so",
                "nullok"
            ]
        );
        assert_eq!(lines[1].0, 3);
        assert_eq!(lines[1].1, ["auth", "required", "pam_x.so", "[msg=a b] c]"]);
    }

    #[test]
    fn includes_are_inline_and_substacks_nest() {
        let s = stack(
            &[
                (
                    "svc",
                    "@include common\nauth substack sub\nauth required pam_twofold.so\naccount required pam_unix.so\n",
                ),
                (
                    "common",
                    "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\nsession required pam_x.so\n",
                ),
                ("sub", "auth sufficient pam_rootok.so\n"),
            ],
            "svc",
        );
        let names: Vec<&str> = s.modules().iter().map(|m| m.name()).collect();
        assert_eq!(names, ["pam_unix", "pam_deny", "pam_rootok", "pam_twofold"]);
        assert_eq!(s.entries.len(), 4);
        assert!(matches!(s.entries[2], Entry::Substack { .. }));
        let unix = s.modules()[0];
        assert_eq!(unix.at.file, Path::new("/p/common"));
        assert_eq!(unix.actions.on("success"), Action::Jump(1));
        assert_eq!(unix.actions.on("auth_err"), Action::Ignore);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn missing_includes_and_bad_lines_fail() {
        let s = stack(
            &[(
                "svc",
                "@include gone\nauth include gone2\nauth frobnicate pam_x.so\nauth required\n",
            )],
            "svc",
        );
        let kinds: Vec<(usize, ProblemKind)> =
            s.problems.iter().map(|p| (p.at.line, p.kind)).collect();
        assert_eq!(
            kinds,
            [
                (1, ProblemKind::AtIncludeMissing),
                (2, ProblemKind::IncludeMissing),
                (3, ProblemKind::Unparsable),
                (4, ProblemKind::Unparsable)
            ]
        );
        assert!(s.entries.iter().all(|e| matches!(e, Entry::Broken { .. })));
    }

    #[test]
    fn keywords_are_linux_pams_tables() {
        let r = Actions::keyword("requisite").unwrap();
        assert_eq!(
            (r.on("success"), r.on("ignore"), r.on("auth_err")),
            (Action::Ok, Action::Ignore, Action::Die)
        );
        let s = Actions::keyword("sufficient").unwrap();
        assert_eq!(
            (s.on("success"), s.on("ignore"), s.on("auth_err")),
            (Action::Done, Action::Ignore, Action::Ignore)
        );
        let o = Actions::keyword("optional").unwrap();
        assert_eq!(o.on("auth_err"), Action::Ignore);
        let b = Actions::bracket("success=ok").unwrap();
        assert_eq!(b.on("auth_err"), Action::Bad);
        assert!(Actions::bracket("success=maybe").is_err());
    }

    #[test]
    fn include_loops_stop() {
        let s = stack(&[("a", "auth include a\n")], "a");
        assert_eq!(s.problems.len(), 1);
    }
}
