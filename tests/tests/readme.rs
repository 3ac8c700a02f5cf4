//! The README's Rust code is code this test binary compiles: every `rust` code block of README.md
//! appears, line for line, in `readme` below, so an API change that the README does not follow
//! fails the build, and a README edit not made here fails the test.

/// The README's blocks, in its order, each wrapped only where it is a fragment. Not run: they
/// use the README's fixed key `/tmp/telemetry`, which a running program may hold.
#[rustfmt::skip]
#[allow(dead_code, unused_variables, unused_mut, clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
mod readme {
    // "Example": a whole program.
    use smobject::shared_memory;
    use std::time::Duration;

    #[shared_memory(path = "/tmp/telemetry", id = 'a')]          // optional: mode = 0o660
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], pub status: u32, pub _pad: u32 }

    fn main() -> smobject::Result<()> {
        // the producer process
        let producer: smobject::Shared<Telemetry> = Telemetry::create()?;   // new object, zeroed
        producer.write(|t| { t.seq += 1; t.pos = [1.0, 2.0, 3.0]; });      // exclusive, then published
        let mut g = producer.lock()?;  g.status = 2;  drop(g);               // guard: publishes on drop

        // a consumer process
        let consumer = Telemetry::access()?;                                 // the existing object
        let snap: Telemetry = consumer.read();                               // a consistent copy
        let v = consumer.version();                                          // count of published writes
        let v2 = consumer.wait_for_update(v, Some(Duration::from_millis(500))); // sleeps until a newer write
        Ok(())
    }

    // "Self-describing objects and evolution": a fragment, in a function returning its errors.
    fn dyn_object() -> smobject::Result<()> {
        // Another process runs `Telemetry::create()`; this one has no Rust type for it.
        let o = smobject::DynObject::access_at("/tmp/telemetry", b'a')?;
        o.set(&["seq=7", "pos[1]=2.5"])?;            // one locked write, range-checked
        let snap = o.read();                          // a consistent snapshot
        assert_eq!(snap.get("pos")?.to_string(), "[0.0, 2.5, 0.0]");
        println!("{}", snap.value().to_json());       // {"seq": 7, "pos": [0.0, 2.5, 0.0], ...}
        Ok(())
    }

    // "Async waits": a fragment, in an async function (the README's "tokio task").
    async fn follow() -> smobject::Result<()> {
        // In a tokio task: follow a Telemetry written by another process, and notice silence.
        let consumer = Telemetry::access()?;
        let mut seen = consumer.version();
        loop {
            match tokio::time::timeout(Duration::from_secs(1), consumer.changed(seen)).await {
                Ok(v) => {
                    seen = v?;                                   // the new version
                    let t = consumer.read();                     // that version or a newer one
                }
                Err(_) => eprintln!("no write for 1 s (last {:?} ago)", consumer.last_write().elapsed()),
            }
        }
    }
}

/// The `rust` code blocks of a markdown text, each as its lines.
fn rust_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        // The info string's first word: "```rust", "```rust,no_run" and "```rust ignore" count.
        let fence = line.trim();
        let lang = fence
            .strip_prefix("```")
            .map(|info| info.split([',', ' ']).next().unwrap_or(""));
        match (&mut current, fence) {
            (None, _) if lang == Some("rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => block.push(line),
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "a `rust` code block of the README is never closed"
    );
    blocks
}

/// Whether `block`'s lines occur in `source` as consecutive lines, each equal up to the
/// indentation (the blocks are indented here where they are wrapped in a function).
fn occurs_in(block: &[&str], source: &[&str]) -> bool {
    !block.is_empty()
        && source.windows(block.len()).any(|window| {
            window
                .iter()
                .zip(block)
                .all(|(s, b)| s.trim_start() == b.trim_start())
        })
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_by_this_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("reading README.md");
    let this =
        std::fs::read_to_string(root.join("tests/tests/readme.rs")).expect("reading this file");
    // Only the module above counts, not this test's own text.
    let module: Vec<&str> = this
        .lines()
        .take_while(|l| !l.starts_with("/// The `rust` code blocks"))
        .collect();
    let blocks = rust_blocks(&readme);
    assert_eq!(
        blocks.len(),
        3,
        "README.md has {} `rust` code blocks; `readme` above wraps 3: add the new one",
        blocks.len()
    );
    for block in &blocks {
        assert!(
            occurs_in(block, &module),
            "this README block is not in tests/tests/readme.rs (copy it into `readme` there):\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn the_check_finds_a_changed_line() {
    let source = ["fn f() {", "    let a = 1;", "    let b = 2;", "}"];
    assert!(occurs_in(&["let a = 1;", "let b = 2;"], &source));
    assert!(!occurs_in(&["let a = 1;", "let b = 3;"], &source));
    assert!(!occurs_in(&["let b = 2;", "let a = 1;"], &source));
    assert!(!occurs_in(&[], &source));
    let md = "text\n```rust\nlet x = 1;\n```\n```sh\nls\n```\n```rust,no_run\nfoo();\nbar();\n```\n```rusty\nno\n```\n";
    assert_eq!(
        rust_blocks(md),
        vec![vec!["let x = 1;"], vec!["foo();", "bar();"]]
    );
}
