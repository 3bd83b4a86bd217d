//! On-demand prices the sizing's monthly cost is computed from: AWS us-east-1 (N. Virginia), Linux, USD, from
//! the pages named below, as of [`AS_OF`] (the figures AWS has published for these types since m7g's launch in
//! 2023; recorded on that date, not read from the pages by a program). They are a committed table rather than a
//! live lookup so that a sizing is reproducible and testable offline; refresh the figures and the date together.

/// The date every figure below was read from its source.
pub const AS_OF: &str = "2026-12-02";
/// The region the figures are for.
pub const REGION: &str = "us-east-1";
/// Hours AWS bills a month at (its pricing pages' convention: 730 h).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Source of the EC2 figures.
pub const EC2_SOURCE: &str = "https://aws.amazon.com/ec2/pricing/on-demand/";
/// Source of the EBS figures.
pub const EBS_SOURCE: &str = "https://aws.amazon.com/ebs/pricing/";

/// EC2 on-demand price per hour, USD, of every instance type sizing may choose (and the system nodes').
pub const EC2_HOURLY_USD: &[(&str, f64)] = &[
    ("m7g.large", 0.0816),
    ("m7g.xlarge", 0.1632),
    ("m7g.2xlarge", 0.3264),
    ("m7g.4xlarge", 0.6528),
    ("m7g.8xlarge", 1.3056),
    ("m7g.12xlarge", 1.9584),
    ("m7g.16xlarge", 2.6112),
];

/// gp3 storage, USD per GiB-month.
pub const GP3_GIB_MONTH_USD: f64 = 0.08;
/// gp3 throughput a volume gets without paying for it, MB/s.
pub const GP3_FREE_MBPS: f64 = 125.0;
/// gp3 throughput provisioned above [`GP3_FREE_MBPS`], USD per MB/s-month.
pub const GP3_MBPS_MONTH_USD: f64 = 0.040;
/// gp3 IOPS a volume gets without paying for it.
pub const GP3_FREE_IOPS: u32 = 3000;
/// gp3 IOPS provisioned above [`GP3_FREE_IOPS`], USD per IOPS-month. Kafka's large sequential writes need
/// no more IOPS than the free ones; only gp3's rule of at most 0.25 MiB/s per IOPS makes volumes past 750 MiB/s
/// pay for some ([`crate::sizing::gp3_attributes`]).
pub const GP3_IOPS_MONTH_USD: f64 = 0.005;

/// The hourly price of an instance type, if the table has it.
pub fn ec2_hourly_usd(instance_type: &str) -> Option<f64> {
    EC2_HOURLY_USD.iter().find(|(name, _)| *name == instance_type).map(|(_, usd)| *usd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_type_sizing_may_choose_has_a_price() {
        for it in crate::sizing::INSTANCE_TYPES {
            assert!(ec2_hourly_usd(it.name).is_some_and(|p| p > 0.0), "{} has no price", it.name);
        }
        assert!(ec2_hourly_usd(crate::sizing::SYSTEM_INSTANCE).is_some());
        assert_eq!(ec2_hourly_usd("m7g.medium"), None);
    }
}
