//! Builds the connector plugins bundled into the server (`src/runtime/bundled.rs`) for
//! wasm32-wasip2, in a target directory of their own (a nested cargo cannot share the outer
//! one's lock), and copies the components to OUT_DIR. With `LATCHKEY_BUNDLED_PLUGINS=DIR` it
//! takes prebuilt components from DIR instead (`tests/run` builds every plugin once).

use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate name, component file name)
const BUNDLED: &[(&str, &str)] = &[("ad-ldap", "ad_ldap.wasm"), ("azure-ad", "azure_ad.wasm")];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-env-changed=LATCHKEY_BUNDLED_PLUGINS");
    for watched in ["plugins/sdk", "wit"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    for (name, _) in BUNDLED {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("plugins").join(name).display()
        );
    }
    let dir = match std::env::var_os("LATCHKEY_BUNDLED_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => build(&workspace),
    };
    for (_, file) in BUNDLED {
        let from = dir.join(file);
        if let Err(error) = std::fs::copy(&from, out_dir.join(file)) {
            panic!(
                "the bundled plugin {} is missing ({error}); build the plugins with `cargo build \
                 --target wasm32-wasip2 --release -p ad-ldap -p azure-ad`, or unset LATCHKEY_BUNDLED_PLUGINS",
                from.display()
            );
        }
        println!("cargo:rerun-if-changed={}", from.display());
    }
}

/// Adds the wasm32-wasip2 target through rustup when the toolchain lacks it (the pinned
/// toolchain lists it, but a toolchain installed earlier may not have it yet).
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let present = sysroot.is_some_and(|root| root.join("lib/rustlib/wasm32-wasip2").exists());
    if !present {
        println!(
            "cargo:warning=adding the wasm32-wasip2 target with rustup (for the bundled plugins)"
        );
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status();
    }
}

/// Builds the bundled plugins; returns the directory holding their components.
fn build(workspace: &Path) -> PathBuf {
    ensure_target();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bundled-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (name, _) in BUNDLED {
        command.args(["-p", name]);
    }
    // The outer build's flags and settings are for the host, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo: {e}"));
    if !status.success() {
        panic!(
            "building the bundled plugins for wasm32-wasip2 failed (see above); the target \
             comes with the pinned toolchain (`rustup target add wasm32-wasip2`)"
        );
    }
    target_dir.join("wasm32-wasip2/release")
}
