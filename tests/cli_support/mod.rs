//! Helpers shared by the tests that run the built example binaries (`examples_cli.rs`,
//! `examples_attention_features.rs`): where the binaries are and a scratch directory.

use std::path::{Path, PathBuf};

/// `target/<profile>/examples/<name>`, next to the running test's `deps/` folder.
pub fn named_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds the examples first)",
        bin.display()
    );
    bin
}

/// A fresh, empty temporary directory `tessera-<prefix>-<pid>-<name>` for one test.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
