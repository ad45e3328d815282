//! Embeds every shipped arch, energy-table and workload file so the binary runs from any directory and a new
//! design needs only a new file (no Rust change).

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut out = String::from("/// (kind, name, path relative to the repository, text)\npub static FILES: &[(&str, &str, &str, &str)] = &[\n");
    for (kind, dir) in [
        ("arch", "arch"),
        ("gpu", "arch/gpu"),
        ("energy", "arch/energy"),
        ("cascade", "workloads/cascades"),
        ("model", "workloads/models"),
        ("layer", "workloads/layers"),
    ] {
        let path = Path::new(&root).join(dir);
        println!("cargo:rerun-if-changed={}", path.display());
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for p in names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        {
            println!("cargo:rerun-if-changed={}", p.display());
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let rel = format!("{dir}/{name}.ron");
            let _ = writeln!(
                out,
                "    ({kind:?}, {name:?}, {rel:?}, include_str!({:?})),",
                p.display().to_string()
            );
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("library.rs");
    std::fs::write(dest, out).expect("write library index");
}
