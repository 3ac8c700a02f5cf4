//! [`c_header`]: a C header that lets a C or C++ program share a `#[shared_memory]` struct.

use std::fmt::Write as _;

use crate::__private::CField;
use crate::header::{FORMAT_VERSION, HEADER_SIZE, MAGIC, SYNC_OFFSET};

/// Offsets of the seqlock words in the counter segment (docs/FORMAT.md).
const SEQ: usize = SYNC_OFFSET;
const BACKUP_SEQ: usize = SYNC_OFFSET + 64;
use crate::key::COUNTER_OFFSET;
use crate::layout::SharedStruct;

/// Attempts the generated read function makes before giving up (a writer publishing back to
/// back can keep overlapping an optimistic copy; smobject's own readers then take the lock).
const READ_TRIES: u32 = 1_000_000;

/// A self-contained C header declaring `T` for C (C11) and C++ programs: the struct, with a
/// `_Static_assert` on its size and on every field's offset (so a C compiler that lays it out
/// differently fails to compile instead of corrupting memory), its key (`path`, `id`, counter
/// id), its layout fingerprint, and `static inline` functions that check an object's header
/// and read the struct consistently (the lock-free protocol of `docs/FORMAT.md`).
///
/// The header is generated for this build: `usize`/`isize` fields become `uint64_t`/`int64_t`
/// on a 64-bit target (a fixed width, so a C program built with `-m32` still agrees), and the
/// fingerprint is this build's. A field whose type is another struct is declared as
/// `struct <Name>`: declare it first (for another `#[shared_memory]` struct, include its
/// header, which has its own include guard). A type alias is spelled as its own name, so alias
/// plain number types in Rust only where C has the same name, or let the asserts tell you.
///
/// A C program attaches as the original C++ class did: `shmget(ftok(PATH, ID), 0, 0)` and
/// `shmget(ftok(PATH, COUNTER_ID), 0, 0)`, `shmat` both, increment the `int` at offset 0 of
/// the counter segment; to leave, decrement it and `shmdt` both. It takes no lock and never
/// frees: when it detaches last the pair is stale, and smobject's next creator (or
/// [`remove_stale`](crate::remove_stale)) reclaims it. Writing from C is described in
/// `docs/FORMAT.md` (the robust mutex at offset 448); the header only reads.
///
/// ```
/// #[smobject::shared_memory(path = "/tmp/telemetry", id = 'a')]
/// #[repr(C)]
/// pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], pub status: u32, pub _pad: u32 }
///
/// let h = smobject::c_header::<Telemetry>();
/// assert!(h.contains("struct Telemetry {\n    uint64_t seq;"));
/// assert!(h.contains("    double pos[3];"));
/// assert!(h.contains("_Static_assert(sizeof(struct Telemetry) == 40,"));
/// assert!(h.contains("_Static_assert(offsetof(struct Telemetry, status) == 32,"));
/// assert!(h.contains("#define TELEMETRY_SMOBJECT_PATH \"/tmp/telemetry\""));
/// assert!(h.contains("#define TELEMETRY_SMOBJECT_COUNTER_ID ('a' - 58)"));
/// assert!(h.contains("static inline int telemetry_smobject_read(const void *counter_base, const void *data, struct Telemetry *out)"));
/// ```
#[must_use]
pub fn c_header<T: SharedStruct>() -> String {
    render(&Spec {
        name: T::TYPE_NAME,
        path: T::PATH,
        id: T::ID,
        mode: T::MODE,
        fingerprint: T::FINGERPRINT,
        size: std::mem::size_of::<T>(),
        fields: T::C_FIELDS,
        // A schema too large to store cannot make an object either; the header then accepts
        // only the exact fingerprint.
        schema: T::SCHEMA.to_schema().encode().unwrap_or_default(),
        name_len: T::SCHEMA.name.len(),
    })
}

/// What the header is written from.
struct Spec<'a> {
    name: &'a str,
    path: &'a str,
    id: u8,
    mode: u32,
    fingerprint: u64,
    size: usize,
    fields: &'a [CField],
    /// The encoded schema (`docs/FORMAT.md`, "Schema").
    schema: Vec<u8>,
    /// Bytes of the struct's name in it.
    name_len: usize,
}

/// C11/C17/C23 keywords and names a struct member cannot take; such a field gets a `_` suffix.
const C_RESERVED: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "alignas",
    "alignof",
    "bool",
    "false",
    "true",
    "nullptr",
    "static_assert",
    "thread_local",
    "typeof",
    "constexpr",
    "class",
    "delete",
    "new",
    "private",
    "protected",
    "public",
    "template",
    "this",
    "throw",
    "try",
    "catch",
    "friend",
    "operator",
    "virtual",
    "namespace",
    "using",
    "mutable",
    "explicit",
];

/// The member name C sees.
fn c_name(name: &str) -> String {
    if C_RESERVED.contains(&name) {
        format!("{name}_")
    } else {
        name.to_owned()
    }
}

/// `RobotPose` -> `robot_pose` (the prefix of the generated functions; macros use it upper-cased).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

/// A C string literal holding `s` (octal escapes for anything not printable ASCII).
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"), // no trigraphs
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// A C character literal holding `id`.
fn c_char(id: u8) -> String {
    match id {
        b'\\' => "'\\\\'".to_owned(),
        b'\'' => "'\\''".to_owned(),
        0x20..=0x7e => format!("'{}'", char::from(id)),
        _ => format!("'\\{id:03o}'"),
    }
}

/// The member declaration of one field.
fn member(f: &CField) -> String {
    let ty = if f.atomic {
        format!("_Atomic({})", f.c_type)
    } else {
        f.c_type.to_owned()
    };
    let mut decl = format!("{ty} {}", c_name(f.name));
    for d in f.dims {
        let _ = write!(decl, "[{d}]");
    }
    decl.push(';');
    decl
}

#[allow(clippy::too_many_lines)] // one template, read top to bottom like the header it writes
fn render(s: &Spec<'_>) -> String {
    let name = s.name;
    let lower = snake(name);
    let upper = lower.to_uppercase();
    let guard = format!("SMOBJECT_{upper}_H");
    let mut h = String::new();
    let mut line = |text: &str| {
        h.push_str(text);
        h.push('\n');
    };
    line(&format!(
        "/* {name}: a struct shared with Rust programs through smobject (System V shared memory).\n \
         * Generated by smobject::c_header::<{name}>() (format {FORMAT_VERSION}); do not edit: regenerate it\n \
         * whenever the Rust struct changes (the fingerprint below must match the Rust build's).\n \
         *\n \
         * data segment:    shmget(ftok({upper}_SMOBJECT_PATH, {upper}_SMOBJECT_ID), 0, 0): the struct at offset 0\n \
         * counter segment: shmget(ftok({upper}_SMOBJECT_PATH, {upper}_SMOBJECT_COUNTER_ID), 0, 0): the `int`\n \
         *                  count at offset 0, smobject's header, then a backup copy of the struct\n \
         *\n \
         * Attach as the original SMObject class did: shmat both segments and increment the count;\n \
         * to leave, decrement it and shmdt both. Read with {lower}_smobject_read() (never read the\n \
         * data segment directly while a Rust process may write). See docs/FORMAT.md. */"
    ));
    line(&format!("#ifndef {guard}"));
    line(&format!("#define {guard}"));
    line("");
    line("#include <stdint.h>");
    line("#include <stddef.h>");
    line("#include <string.h>");
    line("#include <sys/ipc.h>");
    line("#include <sys/shm.h>");
    line("#ifdef __cplusplus");
    line("#include <atomic>");
    line("#ifndef _Atomic");
    line("#define _Atomic(T) std::atomic<T>");
    line("#endif");
    line("#ifndef _Static_assert");
    line("#define _Static_assert static_assert");
    line("#endif");
    line("extern \"C\" {");
    line("#else");
    line("#include <stdatomic.h>");
    line("#endif");
    line("");
    line(&format!("struct {name} {{"));
    for f in s.fields {
        if f.size == 0 {
            line(&format!(
                "    /* {}: zero-sized, not declared (offset {}) */",
                f.name, f.offset
            ));
        } else {
            line(&format!(
                "    {:<40} /* offset {}, {} bytes */",
                member(f),
                f.offset,
                f.size
            ));
        }
    }
    line("};");
    line("");
    line(&format!(
        "_Static_assert(sizeof(struct {name}) == {}, \"struct {name}: its size differs from the Rust struct's\");",
        s.size
    ));
    for f in s.fields.iter().filter(|f| f.size != 0) {
        let field = c_name(f.name);
        line(&format!(
            "_Static_assert(offsetof(struct {name}, {field}) == {}, \"struct {name}: `{field}` is not where the Rust struct has it\");",
            f.offset
        ));
    }
    line("");
    line(&format!(
        "#define {upper}_SMOBJECT_PATH {}",
        c_string(s.path)
    ));
    line(&format!("#define {upper}_SMOBJECT_ID {}", c_char(s.id)));
    line(&format!(
        "#define {upper}_SMOBJECT_COUNTER_ID ({} - {COUNTER_OFFSET})",
        c_char(s.id)
    ));
    line(&format!(
        "#define {upper}_SMOBJECT_FINGERPRINT {:#018x}ULL",
        s.fingerprint
    ));
    line(&format!("#define {upper}_SMOBJECT_SIZE {}", s.size));
    line(&format!("#define {upper}_SMOBJECT_MODE 0{:o}", s.mode));
    line(&format!(
        "#define {upper}_SMOBJECT_READ_TRIES {READ_TRIES}UL"
    ));
    line("");
    // The schema: magic (5), name (2 + n), size, align, field count (4 each), field records.
    let name_end = 5 + 2 + s.name_len;
    let fields_at = name_end + 12;
    line(
        "/* This struct's schema as smobject encodes it (docs/FORMAT.md, \"Schema\"): an object\n \
         * whose schema starts with the same name and field records holds this struct as a prefix\n \
         * (the append-only evolution rule), so the functions below accept it. */",
    );
    line(&format!(
        "#define {upper}_SMOBJECT_SCHEMA_LEN {}",
        s.schema.len()
    ));
    line(&format!(
        "static const unsigned char {lower}_smobject_schema[{}] = {{",
        s.schema.len().max(1)
    ));
    for chunk in s.schema.chunks(16) {
        let bytes: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
        line(&format!("    {},", bytes.join(", ")));
    }
    if s.schema.is_empty() {
        line("    0");
    }
    line("};");
    line("");
    line("/* Whether the counter segment's header describes a ready smobject object holding this");
    line(" * struct: magic, format, sizes, and either the same fingerprint or a schema of which this");
    line(" * struct's is a prefix (same name; our fields first, byte for byte; not smaller): 0 if so,");
    line(" * -1 if not. Check once after attaching. */");
    line(&format!(
        "static inline int {lower}_smobject_check(const void *counter_base)"
    ));
    line("{");
    line("    const unsigned char *h = (const unsigned char *)counter_base;");
    line("    uint32_t version, header_size, size, nfields, my_size, my_nfields;");
    line("    uint64_t magic, data_size, fingerprint, schema_len;");
    line("    const unsigned char *schema;");
    line("    /* Acquire, and first: the creator writes the rest of the header before it");
    line("     * stores 2, and never again, so the plain reads below race with nothing. */");
    line("    if (__atomic_load_n((const uint32_t *)(h + 4), __ATOMIC_ACQUIRE) != 2)");
    line("        return -1;");
    line("    memcpy(&magic, h + 8, sizeof magic);");
    line("    memcpy(&version, h + 16, sizeof version);");
    line("    memcpy(&header_size, h + 20, sizeof header_size);");
    line("    memcpy(&data_size, h + 24, sizeof data_size);");
    line("    memcpy(&fingerprint, h + 32, sizeof fingerprint);");
    line("    memcpy(&schema_len, h + 176, sizeof schema_len);");
    line(&format!(
        "    if (magic != {MAGIC:#018x}ULL || version != {FORMAT_VERSION}\n        \
         || header_size != {HEADER_SIZE} || data_size < sizeof(struct {name}))"
    ));
    line("        return -1;");
    line(&format!(
        "    if (fingerprint == {upper}_SMOBJECT_FINGERPRINT)\n        return data_size == sizeof(struct {name}) ? 0 : -1;"
    ));
    line(&format!(
        "    if ({upper}_SMOBJECT_SCHEMA_LEN == 0 || schema_len < {upper}_SMOBJECT_SCHEMA_LEN)\n        return -1;"
    ));
    line(&format!(
        "    schema = h + {HEADER_SIZE} + ((data_size + 7) & ~(uint64_t)7);"
    ));
    line(&format!(
        "    memcpy(&size, schema + {name_end}, 4);\n    memcpy(&nfields, schema + {}, 4);",
        name_end + 8
    ));
    line(&format!(
        "    memcpy(&my_size, {lower}_smobject_schema + {name_end}, 4);\n    memcpy(&my_nfields, {lower}_smobject_schema + {}, 4);",
        name_end + 8
    ));
    line(&format!(
        "    return memcmp(schema, {lower}_smobject_schema, {name_end}) == 0 && size == data_size\n        \
         && size >= my_size && nfields >= my_nfields\n        \
         && memcmp(schema + {fields_at}, {lower}_smobject_schema + {fields_at}, {upper}_SMOBJECT_SCHEMA_LEN - {fields_at}) == 0\n        \
         ? 0 : -1;"
    ));
    line("}");
    line("");
    line("#ifndef SMOBJECT_LOAD_GRANULES");
    line("#define SMOBJECT_LOAD_GRANULES");
    line("/* Copies len bytes of an object's data or backup with atomic loads, in the granules of");
    line(" * docs/FORMAT.md (8-byte words from offset 0, then the last len % 8 bytes as a 4-, 2- and");
    line(" * 1-byte atomic): a writer may be storing them concurrently, so a plain memcpy would be a");
    line(" * data race. Relaxed: the seqlock's fence and re-check make the copy a snapshot. */");
    line("static inline void smobject_load_granules(void *dst, const void *src, size_t len)");
    line("{");
    line("    unsigned char *d = (unsigned char *)dst;");
    line("    const unsigned char *s = (const unsigned char *)src;");
    line("    size_t i = 0;");
    line("    for (; i + 8 <= len; i += 8) {");
    line("        uint64_t v = __atomic_load_n((const uint64_t *)(s + i), __ATOMIC_RELAXED);");
    line("        memcpy(d + i, &v, 8);");
    line("    }");
    line("    if (len - i >= 4) {");
    line("        uint32_t v = __atomic_load_n((const uint32_t *)(s + i), __ATOMIC_RELAXED);");
    line("        memcpy(d + i, &v, 4);");
    line("        i += 4;");
    line("    }");
    line("    if (len - i >= 2) {");
    line("        uint16_t v = __atomic_load_n((const uint16_t *)(s + i), __ATOMIC_RELAXED);");
    line("        memcpy(d + i, &v, 2);");
    line("        i += 2;");
    line("    }");
    line("    if (len - i >= 1)");
    line("        d[i] = __atomic_load_n(s + i, __ATOMIC_RELAXED);");
    line("}");
    line("");
    line("/* The first n bytes of an object of len bytes (n <= len), in the object's granules (a");
    line(" * struct of an older build reads a prefix of a newer one's object): a prefix that ends");
    line(" * inside a granule loads that whole granule, sized by len, never by n, so that no load");
    line(" * overlaps a writer's store of another size. */");
    line(
        "static inline void smobject_load_prefix(void *dst, const void *src, size_t n, size_t len)",
    );
    line("{");
    line("    size_t words = n & ~(size_t)7;");
    line("    smobject_load_granules(dst, src, words);");
    line("    if (n > words) {");
    line(
        "        /* bytes words .. n: the object's next 8-byte word, or its last len % 8 bytes */",
    );
    line("        unsigned char tail[8];");
    line("        smobject_load_granules(tail, (const unsigned char *)src + words, len - words < 8 ? len - words : 8);");
    line("        memcpy((unsigned char *)dst + words, tail, n - words);");
    line("    }");
    line("}");
    line("#endif");
    line("");
    line("/* Completed writes so far (the version a Rust reader's `version()` returns). */");
    line(&format!(
        "static inline uint64_t {lower}_smobject_version(const void *counter_base)"
    ));
    line("{");
    line(&format!(
        "    const uint64_t *seq = (const uint64_t *)((const unsigned char *)counter_base + {SEQ});"
    ));
    line("    return __atomic_load_n(seq, __ATOMIC_ACQUIRE) / 2;");
    line("}");
    line("");
    line("/* A consistent copy of the struct into *out: one that a single write published completely,");
    line(" * with no lock (the seqlock read of docs/FORMAT.md; while a write is in progress it copies");
    line(
        " * the last complete value from the backup). Returns 0, or -1 if writes kept overlapping",
    );
    line(&format!(
        " * the copy for {upper}_SMOBJECT_READ_TRIES attempts (then *out is unspecified: retry). */"
    ));
    line(&format!(
        "static inline int {lower}_smobject_read(const void *counter_base, const void *data, struct {name} *out)"
    ));
    line("{");
    line("    const unsigned char *h = (const unsigned char *)counter_base;");
    line("    uint64_t data_size;");
    line(&format!(
        "    const uint64_t *seq = (const uint64_t *)(h + {SEQ});"
    ));
    line(&format!(
        "    const uint64_t *backup_seq = (const uint64_t *)(h + {BACKUP_SEQ});"
    ));
    line(&format!("    const void *backup = h + {HEADER_SIZE};"));
    line("    unsigned long tries;");
    line("    memcpy(&data_size, h + 24, sizeof data_size);");
    line(&format!(
        "    for (tries = 0; tries < {upper}_SMOBJECT_READ_TRIES; tries++) {{"
    ));
    line("        uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);");
    line("        const void *src;");
    line("        if (s1 % 2 == 0)");
    line("            src = data; /* no write in progress */");
    line("        else if (__atomic_load_n(backup_seq, __ATOMIC_ACQUIRE) == s1 - 1)");
    line("            src = backup; /* write in progress: the last complete value */");
    line("        else");
    line("            continue;");
    line(&format!(
        "        smobject_load_prefix((void *)out, src, sizeof(struct {name}), (size_t)data_size);"
    ));
    line("        __atomic_thread_fence(__ATOMIC_ACQUIRE);");
    line("        if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1)");
    line("            return 0; /* nothing wrote the copied buffer meanwhile */");
    line("    }");
    line("    return -1;");
    line("}");
    line("");
    line("#ifdef __cplusplus");
    line("}");
    line("#endif");
    line(&format!("#endif /* {guard} */"));
    h
}

#[cfg(test)]
mod tests {
    use super::{c_char, c_string, render, snake, CField, Spec};

    fn spec() -> Spec<'static> {
        static FIELDS: [CField; 5] = [
            CField {
                name: "seq",
                c_type: "uint64_t",
                atomic: false,
                dims: &[],
                offset: 0,
                size: 8,
            },
            CField {
                name: "m",
                c_type: "float",
                atomic: false,
                dims: &[2, 3],
                offset: 8,
                size: 24,
            },
            CField {
                name: "hits",
                c_type: "uint32_t",
                atomic: true,
                dims: &[],
                offset: 32,
                size: 4,
            },
            CField {
                name: "int",
                c_type: "int32_t",
                atomic: false,
                dims: &[],
                offset: 36,
                size: 4,
            },
            CField {
                name: "none",
                c_type: "uint64_t",
                atomic: false,
                dims: &[0],
                offset: 40,
                size: 0,
            },
        ];
        Spec {
            name: "RobotPose",
            path: "/tmp/a \"b\"\\c",
            id: b'\\',
            mode: 0o600,
            fingerprint: 0x0123_4567_89ab_cdef,
            size: 40,
            fields: &FIELDS,
            schema: b"SMOS\x01\x09\x00RobotPose\x28\0\0\0\x08\0\0\0\x01\0\0\0\x03\0seq\0\0\0\0\x04"
                .to_vec(),
            name_len: 9,
        }
    }

    #[test]
    fn names_and_literals() {
        assert_eq!(snake("RobotPose"), "robot_pose");
        assert_eq!(snake("Telemetry"), "telemetry");
        assert_eq!(snake("IMUData2"), "imudata2");
        assert_eq!(c_string("/tmp/x\"\\\n?"), r#""/tmp/x\"\\\012\?""#);
        assert_eq!(c_char(b'a'), "'a'");
        assert_eq!(c_char(b'\\'), r"'\\'");
    }

    #[test]
    fn declares_fields_asserts_and_functions() {
        let h = render(&spec());
        for needle in [
            "#ifndef SMOBJECT_ROBOT_POSE_H",
            "    uint64_t seq;",
            "    float m[2][3];",
            "    _Atomic(uint32_t) hits;",
            "    int32_t int_;",
            "/* none: zero-sized, not declared (offset 40) */",
            "_Static_assert(sizeof(struct RobotPose) == 40,",
            "_Static_assert(offsetof(struct RobotPose, int_) == 36,",
            r#"#define ROBOT_POSE_SMOBJECT_PATH "/tmp/a \"b\"\\c""#,
            r"#define ROBOT_POSE_SMOBJECT_COUNTER_ID ('\\' - 58)",
            "#define ROBOT_POSE_SMOBJECT_FINGERPRINT 0x0123456789abcdefULL",
            "#define ROBOT_POSE_SMOBJECT_MODE 0600\n",
            "static inline int robot_pose_smobject_check(const void *counter_base)",
            "#define ROBOT_POSE_SMOBJECT_SCHEMA_LEN 38",
            "static const unsigned char robot_pose_smobject_schema[38] = {",
            "memcmp(schema, robot_pose_smobject_schema, 16) == 0",
            "static inline int robot_pose_smobject_read(const void *counter_base, const void *data, struct RobotPose *out)",
        ] {
            assert!(h.contains(needle), "{needle} not in\n{h}");
        }
        assert!(!h.contains("offsetof(struct RobotPose, none)"));
    }

    /// The header compiles as C11 and as C++ (the size and offset asserts included), where the
    /// compilers exist.
    #[test]
    fn compiles_as_c_and_cpp() {
        let dir = std::env::temp_dir().join(format!("smobject-c-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = dir.join("robot_pose.h");
        std::fs::write(&header, render(&spec())).unwrap();
        let src = dir.join("main.c");
        std::fs::write(
            &src,
            "#include \"robot_pose.h\"\nint main(void) { struct RobotPose p; (void)p; \
             int mode = ROBOT_POSE_SMOBJECT_MODE, id = ROBOT_POSE_SMOBJECT_COUNTER_ID; \
             unsigned long long f = ROBOT_POSE_SMOBJECT_FINGERPRINT; const char *path = ROBOT_POSE_SMOBJECT_PATH; \
             (void)mode; (void)id; (void)f; (void)path; \
             return robot_pose_smobject_check((const void *)0) + 0 * (int)sizeof(&robot_pose_smobject_read); }\n",
        )
        .unwrap();
        for (compiler, std) in [("gcc", "-std=c11"), ("g++", "-std=c++17")] {
            let lang: &[&str] = if compiler == "g++" {
                &["-x", "c++"]
            } else {
                &[]
            };
            let out = std::process::Command::new(compiler)
                .args(lang)
                .args([std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
                .arg(&src)
                .output();
            match out {
                Ok(out) => assert!(
                    out.status.success(),
                    "{compiler}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("skipping {compiler}: {e}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
