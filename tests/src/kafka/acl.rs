//! ACLs on clusters with [`ClusterOptions::authorizer`](super::ClusterOptions::authorizer): created over the
//! `PLAIN` listener with CreateAcls, then awaited with DescribeAcls on every running node. In KRaft the
//! controller commits an ACL to the metadata log and each broker's authorizer applies it when it replays
//! that log: a moment later, node by node, so "created" is not yet "in effect".

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_text, exchange, KafkaCluster, EXCHANGE_WITHIN};

/// CreateAcls and DescribeAcls v3: the newest both 3.9 and 4.x answer (4.0 dropped v0).
const ACLS_VERSION: i16 = 3;

/// How long ACLs may take to be in effect on every node: replaying the metadata log takes milliseconds, but
/// other tests share the 2 cores.
pub const ACLS_WITHIN: Duration = Duration::from_secs(30);

// Kafka's codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclPermissionType).
const RESOURCE_ANY: i8 = 1;
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 3;
const PATTERN_ANY: i8 = 1;
const PATTERN_LITERAL: i8 = 3;
const OPERATION_ANY: i8 = 1;
const PERMISSION_ANY: i8 = 1;
const PERMISSION_DENY: i8 = 2;
const PERMISSION_ALLOW: i8 = 3;

/// One ACL, from any host (`*`): `principal` (`User:CN=alice` over TLS, `User:alice` over SASL) may, or
/// with `allow: false` may not, do `operation` on `resource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub principal: String,
    pub resource: AclResource,
    pub operation: AclOperation,
    pub allow: bool,
}

impl Acl {
    /// `principal` may do `operation` on `resource`.
    pub fn allow(principal: &str, operation: AclOperation, resource: AclResource) -> Acl {
        Acl { principal: principal.into(), resource, operation, allow: true }
    }

    /// `principal` may not do `operation` on `resource`, whatever else allows it (a DENY wins).
    pub fn deny(principal: &str, operation: AclOperation, resource: AclResource) -> Acl {
        Acl { allow: false, ..Acl::allow(principal, operation, resource) }
    }

    fn permission(&self) -> i8 {
        if self.allow {
            PERMISSION_ALLOW
        } else {
            PERMISSION_DENY
        }
    }

    fn creation(&self) -> AclCreation {
        AclCreation::default()
            .with_resource_type(self.resource.code())
            .with_resource_name(StrBytes::from_string(self.resource.name().to_owned()))
            .with_resource_pattern_type(PATTERN_LITERAL)
            .with_principal(StrBytes::from_string(self.principal.clone()))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(self.operation.code())
            .with_permission_type(self.permission())
    }

    /// What DescribeAcls lists for this ACL: (resource type, name, pattern type, principal, host, operation,
    /// permission).
    fn described(&self) -> Described {
        (
            self.resource.code(),
            self.resource.name().to_owned(),
            PATTERN_LITERAL,
            self.principal.clone(),
            "*".to_owned(),
            self.operation.code(),
            self.permission(),
        )
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let permission = if self.allow { "ALLOW" } else { "DENY" };
        write!(f, "{} {permission} {:?} on {}", self.principal, self.operation, self.resource)
    }
}

/// What an ACL is about, named literally (no prefixes, no wildcards).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclResource {
    Topic(String),
    /// A consumer group.
    Group(String),
}

impl AclResource {
    fn code(&self) -> i8 {
        match self {
            AclResource::Topic(_) => RESOURCE_TOPIC,
            AclResource::Group(_) => RESOURCE_GROUP,
        }
    }

    fn name(&self) -> &str {
        match self {
            AclResource::Topic(n) | AclResource::Group(n) => n,
        }
    }
}

impl fmt::Display for AclResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclResource::Topic(n) => write!(f, "Topic:{n}"),
            AclResource::Group(n) => write!(f, "Group:{n}"),
        }
    }
}

/// The operations identity tests grant: Kafka's `AclOperation` codes. Read on a topic implies Describe,
/// as does Write; All is every operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Describe,
}

impl AclOperation {
    /// Kafka's code (org.apache.kafka.common.acl.AclOperation).
    pub fn code(self) -> i8 {
        match self {
            AclOperation::All => 2,
            AclOperation::Read => 3,
            AclOperation::Write => 4,
            AclOperation::Create => 5,
            AclOperation::Describe => 8,
        }
    }
}

type Described = (i8, String, i8, String, String, i8, i8);

impl KafkaCluster {
    /// Creates `acls` over the `PLAIN` listener (the fixture is a super user there), fails naming every
    /// one the cluster refused (SECURITY_DISABLED for each on a cluster without
    /// [`ClusterOptions::authorizer`](super::ClusterOptions::authorizer)), and returns once every running
    /// node's authorizer lists them all: a client's next request anywhere is judged by them.
    pub fn create_acls(&self, acls: &[Acl]) -> anyhow::Result<()> {
        if acls.is_empty() {
            return Ok(());
        }
        let what = || format!("creating {} ACLs in cluster {}", acls.len(), self.name);
        let request = CreateAclsRequest::default().with_creations(acls.iter().map(Acl::creation).collect());
        let response = exchange(&self.running_plain_addr()?, ACLS_VERSION, request, EXCHANGE_WITHIN)
            .with_context(what)?;
        anyhow::ensure!(
            response.results.len() == acls.len(),
            "{}: {} results in the answer",
            what(),
            response.results.len()
        );
        let refused: Vec<String> = acls
            .iter()
            .zip(&response.results)
            .filter_map(|(acl, r)| {
                let e = ResponseError::try_from_code(r.error_code)?;
                Some(format!("  {acl}: {}", error_text(e, r.error_message.as_ref())))
            })
            .collect();
        if !refused.is_empty() {
            bail!("{}: {} refused:\n{}", what(), refused.len(), refused.join("\n"));
        }
        self.wait_for_acls(acls, ACLS_WITHIN)
    }

    /// Polls DescribeAcls on every running node until each lists every one of `acls`.
    fn wait_for_acls(&self, acls: &[Acl], within: Duration) -> anyhow::Result<()> {
        let everything = DescribeAclsRequest::default()
            .with_resource_type_filter(RESOURCE_ANY)
            // The defaults would match the empty string only: `None` matches any.
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(PATTERN_ANY)
            .with_operation(OPERATION_ANY)
            .with_permission_type(PERMISSION_ANY);
        let deadline = Instant::now() + within;
        loop {
            let waiting = self.nodes.iter().filter(|n| n.is_running()).find_map(|n| {
                let answer =
                    exchange(&n.plain_addr(), ACLS_VERSION, everything.clone(), Duration::from_secs(3))
                        .and_then(listed);
                match answer {
                    Ok(have) => {
                        let missing: Vec<String> = acls
                            .iter()
                            .filter(|a| !have.contains(&a.described()))
                            .map(|a| a.to_string())
                            .collect();
                        (!missing.is_empty()).then(|| (n.id, format!("it lacks {}", missing.join("; "))))
                    }
                    Err(e) => Some((n.id, format!("{e:#}"))),
                }
            });
            let Some((node, why)) = waiting else { return Ok(()) };
            if Instant::now() >= deadline {
                bail!("ACLs of cluster {} not in effect on node {node} after {within:?}: {why}", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every ACL a DescribeAcls answer lists, or its error.
fn listed(response: DescribeAclsResponse) -> anyhow::Result<BTreeSet<Described>> {
    if let Some(e) = ResponseError::try_from_code(response.error_code) {
        return Err(anyhow!("DescribeAcls: {}", error_text(e, response.error_message.as_ref())));
    }
    let mut all = BTreeSet::new();
    for r in &response.resources {
        for a in &r.acls {
            all.insert((
                r.resource_type,
                r.resource_name.to_string(),
                r.pattern_type,
                a.principal.to_string(),
                a.host.to_string(),
                a.operation,
                a.permission_type,
            ));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_carry_kafkas_codes() {
        let acl = Acl::allow("User:CN=alice", AclOperation::Write, AclResource::Topic("orders".into()));
        let c = acl.creation();
        assert_eq!((c.resource_type, c.resource_pattern_type, c.operation, c.permission_type), (2, 3, 4, 3));
        assert_eq!(
            (c.resource_name.as_str(), c.principal.as_str(), c.host.as_str()),
            ("orders", "User:CN=alice", "*")
        );
        let deny = Acl::deny("User:bob", AclOperation::Read, AclResource::Group("g".into())).creation();
        assert_eq!((deny.resource_type, deny.operation, deny.permission_type), (3, 3, 2));
        let codes: Vec<i8> = [AclOperation::All, AclOperation::Describe, AclOperation::Create]
            .into_iter()
            .map(AclOperation::code)
            .collect();
        assert_eq!(codes, [2, 8, 5]);
        assert_eq!(acl.to_string(), "User:CN=alice ALLOW Write on Topic:orders");
    }
}
