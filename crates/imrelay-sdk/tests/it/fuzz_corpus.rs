//! The cargo-fuzz target bodies (fuzz/targets.rs) run on stable over the
//! committed seed corpus (fuzz/seeds/<target>/) and deterministic mutations of
//! it, so the targets stay compiled and their invariants checked in every
//! `cargo test`. Real fuzzing: `cd fuzz && cargo +nightly fuzz run <target>`.

#[path = "../../../../fuzz/targets.rs"]
mod targets;

use std::path::PathBuf;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Each seed, every truncation, a bit flip and a byte deletion at every
/// position (stride for long seeds), and the seeds glued pairwise.
fn mutations(seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in seeds {
        out.push(s.clone());
        let stride = (s.len() / 64).max(1);
        for i in (0..s.len()).step_by(stride) {
            out.push(s[..i].to_vec());
            let mut flipped = s.clone();
            flipped[i] ^= 1 << (i % 8);
            out.push(flipped);
            let mut deleted = s.clone();
            deleted.remove(i);
            out.push(deleted);
        }
        for t in seeds {
            out.push([s.as_slice(), t.as_slice()].concat());
        }
    }
    out.push(Vec::new());
    out.push(vec![0xff; 64]);
    out
}

fn run(target: &str, f: fn(&[u8])) {
    let inputs = mutations(&seeds(target));
    assert!(inputs.len() > 50, "{target}: only {} inputs", inputs.len());
    for input in &inputs {
        f(input);
    }
}

#[test]
fn wxbiz_decrypt_corpus() {
    run("wxbiz_decrypt", targets::wxbiz_decrypt);
}

#[test]
fn feishu_decrypt_corpus() {
    run("feishu_decrypt", targets::feishu_decrypt);
}

#[test]
fn callback_xml_corpus() {
    run("callback_xml", targets::callback_xml);
}

#[test]
fn feishu_envelope_corpus() {
    run("feishu_envelope", targets::feishu_envelope);
}
