//! What a platform offers its tenants to pin (`spec.versions`): the Kubernetes and Strimzi versions besides
//! its defaults ([`Offered`]), and the refusal of a pin outside them.
//!
//! Neighbours: [`super::Platform::offered`] holds the list (the controller's `--tenant-*-version` flags);
//! [`super::plan`] refuses a tenant [`unoffered_pins`] finds fault with, beside the schema's checks.

use super::Platform;
use crate::crd::{KafkaTenant, SpecError};

/// The Kubernetes and Strimzi versions a tenant may pin in `spec.versions` besides the platform's defaults
/// (Kafka: any its Strimzi runs). A pin outside them is refused: CAPA finds no machine image for a Kubernetes
/// version the platform built none for, and no machine starts; a Strimzi chart the platform has not vetted (or
/// mirrored) is not installed on its say-so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offered {
    /// Kubernetes versions (`v1.35.1`) with machine images under [`Platform::images`].
    pub kubernetes: Vec<String>,
    /// Strimzi operator chart versions (`1.1.0`), each one [`crate::strimzi::versions`] knows.
    pub strimzi: Vec<String>,
}

/// The tenant's pins of Kubernetes and Strimzi versions the platform does not offer ([`Offered`]).
pub(super) fn unoffered_pins(t: &KafkaTenant, p: &Platform) -> Vec<SpecError> {
    let Some(pins) = &t.spec.versions else { return Vec::new() };
    let checks = [
        (
            "versions.kubernetes",
            &pins.kubernetes,
            &p.kubernetes_version,
            &p.offered.kubernetes,
            "machine images for",
        ),
        ("versions.strimzi", &pins.strimzi, &p.strimzi_version, &p.offered.strimzi, "vetted"),
    ];
    let mut errors = Vec::new();
    for (field, pin, default, offered, why) in checks {
        let Some(pin) = pin.as_ref().filter(|v| *v != default && !offered.contains(v)) else { continue };
        let list: Vec<&str> = std::iter::once(default).chain(offered).map(String::as_str).collect();
        errors.push(SpecError {
            field: field.into(),
            message: format!(
                "{pin} is not offered by this platform: it offers {} (the versions it has {why})",
                list.join(", ")
            ),
        });
    }
    errors
}
