//! `kp_audit::ExportReader`: any bytes, as an export file an auditor is handed. Beyond never
//! panicking: the genesis it reads is canonical; after an error or the end mark it yields
//! nothing more; and an export read to its end mark is exactly what `ExportWriter` writes for
//! the same genesis and blocks, so one ledger has one export.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_audit::{ExportReader, ExportWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = ExportReader::new(data) else { return };
    let genesis_bytes = reader.genesis_bytes().to_vec();
    assert_eq!(kp_proto::encode_genesis(reader.genesis()), genesis_bytes, "the genesis is canonical");
    let mut blocks = Vec::new();
    let mut complete = true;
    for item in reader.by_ref() {
        match item {
            Ok(b) => blocks.push(b),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    assert!(reader.next().is_none(), "nothing after an error or the end mark");
    if !complete {
        return;
    }
    let mut w = ExportWriter::new(Vec::new(), &genesis_bytes).unwrap();
    for b in blocks {
        w.block(b.header, b.events, b.certificate).unwrap();
    }
    assert_eq!(w.finish().unwrap(), data, "a complete export is what the writer writes");
});
