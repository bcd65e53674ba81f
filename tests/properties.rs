//! Property tests for every parser of untrusted bytes: tree manifests, journal
//! events, digests and REF strings, fixture task files. `PROPTEST_CASES=100000`
//! runs them longer (docs/reliability.md).

use cto_ledger::events::{Actor, Body, Event, ModelAdmissionRec, RevocationRec};
use cto_ledger::fixture;
use cto_ledger::id::{DigestPrefix, ObjectId, Sha256Digest};
use cto_ledger::tree::{Entry, Kind, Tree};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        name(),
        0u8..3,
        any::<bool>(),
        0..=cto_ledger::tree::MAX_SIZE,
        any::<[u8; 32]>(),
        proptest::collection::vec(1u8..=255, 1..20),
    )
        .prop_map(|(name, k, exec, size, d, target)| {
            let object = Some(ObjectId(d));
            let sha256 = Some(Sha256Digest(d));
            match k {
                0 => Entry {
                    name,
                    kind: Kind::File,
                    executable: exec,
                    size,
                    object,
                    sha256,
                    target: None,
                },
                1 => Entry {
                    name,
                    kind: Kind::Dir,
                    executable: false,
                    size,
                    object,
                    sha256,
                    target: None,
                },
                _ => Entry {
                    name,
                    kind: Kind::Symlink,
                    executable: false,
                    size,
                    object: None,
                    sha256: None,
                    target: Some(target),
                },
            }
        })
}

fn tree() -> impl Strategy<Value = Tree> {
    proptest::collection::vec(entry(), 0..8).prop_map(|mut es| {
        es.sort_by(|a, b| a.name.cmp(&b.name));
        es.dedup_by(|a, b| a.name == b.name);
        Tree { entries: es }
    })
}

proptest! {
    #[test]
    fn tree_encoding_round_trips(t in tree()) {
        let bytes = t.encode();
        prop_assert_eq!(Tree::decode(&bytes).unwrap(), t);
        // The fast encoder writes exactly what an RFC 8785 canonicaliser makes of it.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(serde_jcs::to_vec(&value).unwrap(), bytes);
    }

    #[test]
    fn sizes_beyond_exact_json_integers_are_refused(e in entry(), big in (cto_ledger::tree::MAX_SIZE + 1)..) {
        let mut t = Tree { entries: vec![e] };
        t.entries[0].size = big;
        prop_assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn different_trees_never_share_an_encoding(a in tree(), b in tree()) {
        prop_assume!(a != b);
        prop_assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn tree_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Tree::decode(&bytes);
    }

    #[test]
    fn tree_decoding_of_mutated_manifests_never_panics(t in tree(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = t.encode();
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        if let Ok(decoded) = Tree::decode(&bytes) {
            // Whatever decodes is canonical: it encodes back to the same bytes.
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn digests_round_trip_and_parsing_never_panics(d in any::<[u8; 32]>(), junk in ".{0,80}") {
        let id = ObjectId(d);
        prop_assert_eq!(ObjectId::parse(&id.to_string()).unwrap(), id);
        prop_assert_eq!(ObjectId::parse(&id.hex()).unwrap(), id);
        let _ = ObjectId::parse(&junk);
        let _ = Sha256Digest::parse(&junk);
        if let Some(p) = DigestPrefix::parse(&junk, 4) {
            prop_assert!(p.hex.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn events_round_trip_through_canonical_json(provider in ".{1,30}", model in ".{0,30}", reason in ".{0,60}", seq in 1u64..1_000_000) {
        for body in [
            Body::ModelAdmission(ModelAdmissionRec { id: "mod_0".parse().unwrap(), provider: provider.clone(), model: model.clone(), endpoint: None, api: None, script: None, script_path: None }),
            Body::Revocation(RevocationRec { id: "rev_0".parse().unwrap(), target: "adm_0".parse().unwrap(), reason: reason.clone() }),
        ] {
            let e = Event { seq, time: "2026-05-31T00:00:00.000Z".into(), actor: Actor { user: provider.clone(), uid: 0, host: model.clone() }, body };
            let bytes = serde_jcs::to_vec(&e).unwrap();
            let back: Event = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &e);
            prop_assert_eq!(serde_jcs::to_vec(&back).unwrap(), bytes);
        }
    }

    #[test]
    fn journal_event_decoding_never_panics(text in ".{0,300}") {
        let _ = serde_json::from_str::<Event>(&text);
    }

    #[test]
    fn fixture_task_files_never_panic(task in proptest::collection::vec(any::<u8>(), 0..300), manifest in ".{0,200}") {
        let good_manifest = br#"{"name":"f","task":"t","repo":"r","language":"python","package_manager":"pip","test_command":["true"]}"#.to_vec();
        for m in [good_manifest, manifest.into_bytes()] {
            let files = vec![
                ("fixture.json".to_string(), m),
                ("task/t.task.json".to_string(), task.clone()),
                ("repo/a.py".to_string(), b"x = 1\n".to_vec()),
            ];
            let _ = fixture::from_files("prop".into(), files);
        }
    }
}

#[test]
fn ref_resolution_never_panics_on_arbitrary_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let l = cto_ledger::Ledger::open(&tmp.path().join("ledger.db"), cto_ledger::Mode::ReadWrite)
        .unwrap();
    let hash = |p: &std::path::Path| cto_ledger::hash_file(p);
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&"\\PC{0,60}", |s| {
            let _ = l.resolve(&s, &hash);
            Ok(())
        })
        .unwrap();
    for s in [
        "run:",
        "commit:",
        "commit:zz",
        "blake3:",
        "sha256:%",
        "adm_%",
        "_",
        "%",
        "\\",
        "../../etc/passwd",
        "a/b",
        "/",
    ] {
        let _ = l.resolve(s, &hash);
    }
}

/// Link targets built from names that exist inside the tree and, mirrored, around it.
fn link_target() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(".."),
            Just("."),
            Just("d0"),
            Just("d1"),
            Just("l0"),
            Just("l1"),
            Just("f")
        ],
        1..6,
    )
    .prop_map(|c| c.join("/"))
}

/// Where links sit: the top, a folder, a folder in a folder.
const LINK_PLACES: &[&str] = &["l0", "l1", "d0/l0", "d0/l1", "d0/d1/l0", "d1/l1"];

fn link_tree() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    proptest::collection::vec((proptest::sample::select(LINK_PLACES), link_target()), 1..5)
        .prop_map(|mut v| {
            v.sort_by_key(|(p, _)| *p);
            v.dedup_by_key(|(p, _)| *p);
            v
        })
}

/// Mirrors the names a target may use into `dir`, so a link that escapes into it
/// resolves (and `canonicalize` shows where) instead of dangling.
fn mirror(dir: &std::path::Path) {
    for d in ["d0", "d1", "d0/d1"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in ["f", "l0", "l1", "d0/f", "d0/l0", "d0/l1", "d1/f"] {
        let _ = std::fs::write(dir.join(f), "outside");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever links a tree holds, nothing `restore` writes resolves outside the target:
    /// a tree is either refused (and nothing written) or every link that resolves at all
    /// lands inside. A tree is refused only for a `..` or a loop of links.
    #[test]
    fn restored_links_never_resolve_outside_the_target(links in link_tree()) {
        let env = crate::util::Env::new();
        let src = env.path("src");
        mirror(&src);
        for (place, target) in &links {
            let p = src.join(place);
            let _ = std::fs::remove_file(&p);
            std::os::unix::fs::symlink(target, &p).unwrap();
        }
        let tree = env.ok(["ingest", crate::util::s(&src), "--json"]).json()["items"][0]["object"]
            .as_str()
            .unwrap()
            .to_string();
        // Six levels of mirrored names above the target: every escape of at most five
        // components from at most two folders deep lands on a real name.
        let mut outer = env.path("box");
        for level in 0..6 {
            mirror(&outer);
            outer = outer.join(format!("p{level}"));
        }
        let dest = outer.join("dest");
        let r = env.run(["restore", &tree, crate::util::s(&dest)]);
        let climbs = links.iter().any(|(_, t)| t.split('/').any(|c| c == ".."));
        if r.code == 2 {
            let looped = r.stderr.contains("loop");
            prop_assert!(climbs || looped, "refused a tree without `..` or a loop: {links:?}\n{}", r.stderr);
            prop_assert!(!dest.exists(), "a refused restore wrote {}", dest.display());
        } else {
            prop_assert_eq!(r.code, 0, "{}", r.stderr);
            let inside = dest.canonicalize().unwrap();
            for (place, target) in &links {
                if let Ok(real) = dest.join(place).canonicalize() {
                    prop_assert!(
                        real.starts_with(&inside),
                        "{place} -> {target} resolves to {} outside {} ({links:?})",
                        real.display(),
                        inside.display()
                    );
                }
            }
        }
    }
}
