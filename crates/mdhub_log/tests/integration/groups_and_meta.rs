//! Consumer group offsets, the epoch, the directory lock and config parsing.

use mdhub_log::{Error, Log, LogConfig};

use crate::common::config;

#[test]
fn committed_offsets_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(config(tmp.path(), 4096)).unwrap();
        log.create_topic("a", 2).unwrap();
        log.create_topic("b", 1).unwrap();
        assert_eq!(log.committed("g1", "a", 0).unwrap(), None);
        log.commit("g1", "a", 0, 5).unwrap();
        log.commit("g1", "a", 1, 7).unwrap();
        log.commit("g1", "a", 0, 6).unwrap();
        log.commit("g2", "b", 0, 1).unwrap();
        assert!(matches!(
            log.commit("bad group", "a", 0, 1),
            Err(Error::InvalidGroupName { .. })
        ));
        assert!(matches!(
            log.commit("g1", "nope", 0, 1),
            Err(Error::UnknownTopic { .. })
        ));
        assert!(matches!(
            log.commit("g1", "a", 2, 1),
            Err(Error::UnknownPartition { .. })
        ));
    }
    let log = Log::open(config(tmp.path(), 4096)).unwrap();
    assert_eq!(log.committed("g1", "a", 0).unwrap(), Some(6));
    assert_eq!(log.committed("g1", "a", 1).unwrap(), Some(7));
    assert_eq!(log.committed("g2", "b", 0).unwrap(), Some(1));
    assert_eq!(log.committed("g2", "a", 0).unwrap(), None);
    assert_eq!(log.topics(), vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
}

#[test]
fn epoch_persists_and_differs_between_directories() {
    let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let e1 = Log::open(config(t1.path(), 4096))
        .unwrap()
        .epoch()
        .to_owned();
    let again = Log::open(config(t1.path(), 4096))
        .unwrap()
        .epoch()
        .to_owned();
    let e2 = Log::open(config(t2.path(), 4096))
        .unwrap()
        .epoch()
        .to_owned();
    assert_eq!(e1, again);
    assert_ne!(e1, e2);
    assert_eq!(e1.len(), 16);
}

#[test]
fn a_directory_opens_once() {
    let tmp = tempfile::tempdir().unwrap();
    let _log = Log::open(config(tmp.path(), 4096)).unwrap();
    assert!(matches!(
        Log::open(config(tmp.path(), 4096)),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn config_parses_from_toml_with_defaults_and_rejects_unknown_keys() {
    let cfg: LogConfig =
        toml::from_str("dir = \"/var/lib/mdhub/log\"\nsegment_bytes = 1048576\n").unwrap();
    assert_eq!(cfg.segment_bytes, 1 << 20);
    assert_eq!(cfg.partitions, LogConfig::default().partitions);
    let err = toml::from_str::<LogConfig>("segment_byte = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("segment_byte"), "{err}");
    let bad = LogConfig {
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    assert!(matches!(
        Log::open(bad),
        Err(Error::InvalidConfig {
            field: "index_interval_bytes",
            ..
        })
    ));
}
