//! Build information for `imrelay --version`: the git commit (short hash,
//! `-dirty` with uncommitted changes), the build date (UTC) and the rustc
//! version. No extra crates: `git` and `rustc` are asked directly, and every
//! piece falls back to `unknown` (a source tarball has no `.git`, a build
//! host may have no `git`).
//!
//! Overrides, for builds where the checkout is not at hand (a Docker build
//! context without `.git`, a distribution package):
//! - `IMRELAY_BUILD_COMMIT`: the commit to print as is;
//! - `SOURCE_DATE_EPOCH`: the build date, as reproducible builds define it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IMRELAY_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = match std::env::var("IMRELAY_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git_commit(&manifest_dir).unwrap_or_else(|| "unknown".to_string()),
    };
    let date = build_date().unwrap_or_else(|| "unknown".to_string());
    let rustc = rustc_version().unwrap_or_else(|| "unknown".to_string());

    println!("cargo:rustc-env=IMRELAY_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=IMRELAY_BUILD_DATE={date}");
    println!("cargo:rustc-env=IMRELAY_BUILD_RUSTC={rustc}");
}

/// Output of `git <args>` run in `dir`, trimmed; `None` when git is missing,
/// fails (not a checkout) or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn git_commit(dir: &Path) -> Option<String> {
    // A source tarball unpacked inside some other repository must not print
    // that repository's commit: the crate has to be tracked by this one.
    git(dir, &["ls-files", "--full-name", "Cargo.toml"])?;
    let hash = git(dir, &["rev-parse", "--short=9", "HEAD"])?;
    watch_git_state(dir);
    // `status --porcelain` prints one line per changed (or untracked, not
    // ignored) file: any output means the tree differs from the commit.
    let dirty = match git(dir, &["status", "--porcelain", "--untracked-files=no"]) {
        Some(_) => "-dirty",
        None => "",
    };
    Some(format!("{hash}{dirty}"))
}

/// Rebuild the version when the checkout moves to another commit or the
/// index changes (a commit, a `git add`). Paths come from git itself, so a
/// worktree (whose `.git` is a file) works too. An edit not yet added to the
/// index does not rerun this script (watching every file would rebuild the
/// binary on each save), so `-dirty` can lag during development; a release
/// build from a checkout is always current.
fn watch_git_state(dir: &Path) {
    let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let git_dir = PathBuf::from(git_dir);
    for f in ["HEAD", "index"] {
        println!("cargo:rerun-if-changed={}", git_dir.join(f).display());
    }
    if let Some(common) = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    ) {
        let common = PathBuf::from(common);
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(head_ref).display());
        }
    }
}

/// `YYYY-MM-DD` (UTC) of `SOURCE_DATE_EPOCH` when set, else of now.
fn build_date() -> Option<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse::<i64>().ok()?,
        Err(_) => {
            i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?
        }
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `rustc --version` of the compiler cargo builds with.
fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}
