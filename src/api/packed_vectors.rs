//! The packed-object vectors (`tests/vectors/packed-objects.txt`, shared with the Python,
//! Kotlin and Swift tests) against the Rust side: `PackedObjects::pack` writes each case's
//! payloads and index, and `publish_packed`'s parsing of lengths finds each case's payloads.

use super::publisher::packed_ranges;
use super::records::PackedObjects;
use crate::core::Object;

const VECTORS: &str = include_str!("../../tests/vectors/packed-objects.txt");

struct Case {
    name: String,
    objects: Vec<Object>,
    payloads: Vec<u8>,
    index: Vec<u8>,
    lengths: Vec<u8>,
}

fn hex(field: &str) -> Vec<u8> {
    if field == "-" {
        return Vec::new();
    }
    (0..field.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&field[at..at + 2], 16).expect("hex"))
        .collect()
}

fn cases() -> Vec<Case> {
    let cases: Vec<Case> = VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "five fields: {line}");
            let objects = match fields[1] {
                "-" => Vec::new(),
                list => list
                    .split(',')
                    .map(|entry| {
                        let parts: Vec<&str> = entry.split(':').collect();
                        Object {
                            group_id: parts[0].parse().expect("group id"),
                            object_id: parts[1].parse().expect("object id"),
                            payload: hex(parts[2]).into(),
                        }
                    })
                    .collect(),
            };
            Case {
                name: fields[0].to_string(),
                objects,
                payloads: hex(fields[2]),
                index: hex(fields[3]),
                lengths: hex(fields[4]),
            }
        })
        .collect();
    assert!(cases.len() >= 5, "the vectors file lost cases");
    cases
}

#[test]
fn pack_writes_each_vector() {
    for case in cases() {
        let packed = PackedObjects::pack(&case.objects);
        assert_eq!(packed.payloads, case.payloads, "{}: payloads", case.name);
        assert_eq!(packed.index, case.index, "{}: index", case.name);
    }
}

#[test]
fn publish_packed_lengths_find_each_vectors_payloads() {
    for case in cases() {
        let ranges = packed_ranges(case.payloads.len(), &case.lengths).expect(&case.name);
        let found: Vec<&[u8]> = ranges.into_iter().map(|r| &case.payloads[r]).collect();
        let expected: Vec<&[u8]> = case.objects.iter().map(|o| o.payload.as_ref()).collect();
        assert_eq!(found, expected, "{}", case.name);
    }
}
