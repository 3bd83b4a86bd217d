//! The Kafka versions each Strimzi release runs: `kafka-versions.yaml` at the release's tag, the entries with
//! `supported: true` (the operator refuses any other version in `spec.kafka.version`:
//! `cluster-operator/.../model/KafkaVersion.java` l.170 at 1.2.0), and its `default: true` one.
//!
//! Neighbours: [`crate::crd`]'s validation and [`crate::render`]'s defaults read [`check_versions`].

/// One Strimzi release and the Kafka versions its operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The operator's (and its Helm chart's) version.
    pub strimzi: &'static str,
    /// Every Kafka version with `supported: true`, oldest first.
    pub kafka: &'static [&'static str],
    /// The one with `default: true`: what the operator runs when `spec.kafka.version` is unset.
    pub default: &'static str,
}

/// Strimzi releases of the 4.x Kafka era, each read from `kafka-versions.yaml` at its tag (the line of each
/// supported entry in brackets). A release that is not here is refused: its Kafka versions are unknown.
pub const RELEASES: &[Release] = &[
    // 0.51.0: l.269, 276, 283.
    Release { strimzi: "0.51.0", kafka: &["4.1.0", "4.1.1", "4.2.0"], default: "4.2.0" },
    // 1.0.0: l.269, 276, 283, 290.
    Release { strimzi: "1.0.0", kafka: &["4.1.0", "4.1.1", "4.1.2", "4.2.0"], default: "4.2.0" },
    // 1.0.1: l.269, 276, 283, 290.
    Release { strimzi: "1.0.1", kafka: &["4.1.0", "4.1.1", "4.1.2", "4.2.0"], default: "4.2.0" },
    // 1.1.0: l.296, 303, 310; 4.1.x is `supported: false` from here on.
    Release { strimzi: "1.1.0", kafka: &["4.2.0", "4.2.1", "4.3.0"], default: "4.3.0" },
    // 1.2.0: l.296, 303, 310, 317.
    Release { strimzi: "1.2.0", kafka: &["4.2.0", "4.2.1", "4.3.0", "4.3.1"], default: "4.3.1" },
];

/// The release `strimzi`, if the table knows it.
pub fn release(strimzi: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.strimzi == strimzi)
}

/// The Kafka versions Strimzi `strimzi` runs; empty for a release the table does not know.
pub fn kafka_versions(strimzi: &str) -> &'static [&'static str] {
    release(strimzi).map_or(&[], |r| r.kafka)
}

/// A Strimzi and Kafka version that do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The table has no such Strimzi release.
    #[error("Strimzi {strimzi} is not one of the known releases ({})", known_releases())]
    UnknownStrimzi {
        /// The Strimzi version asked for.
        strimzi: String,
    },
    /// The release does not run this Kafka version.
    #[error("Kafka {kafka} is not supported by Strimzi {strimzi} (it runs {})", kafka_versions(strimzi).join(", "))]
    Unsupported {
        /// The Strimzi version.
        strimzi: String,
        /// The Kafka version it does not run.
        kafka: String,
    },
}

fn known_releases() -> String {
    RELEASES.iter().map(|r| r.strimzi).collect::<Vec<_>>().join(", ")
}

/// Whether Strimzi `strimzi` runs Kafka `kafka`.
pub fn check_versions(strimzi: &str, kafka: &str) -> Result<(), VersionError> {
    let Some(r) = release(strimzi) else {
        return Err(VersionError::UnknownStrimzi { strimzi: strimzi.into() });
    };
    if r.kafka.contains(&kafka) {
        Ok(())
    } else {
        Err(VersionError::Unsupported { strimzi: strimzi.into(), kafka: kafka.into() })
    }
}
