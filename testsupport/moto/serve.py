"""moto's server (the AWS emulator the Cluster API tests send CAPA's calls to), with two answers made as AWS
makes them where moto 5.2.6 differs in a way CAPA trips over. Run by kaas-testsupport (src/capi/moto.rs) with
the moto venv that scripts/install-prereqs.sh makes; the arguments are moto_server's (-H host -p port), and
MOTO_AMIS_PATH must be set before moto is imported (moto reads it at import).

Each patch is the smallest that lets the test assert on what CAPA asked for instead of seeing moto crash.
"""

import sys

from moto.ec2.models import security_groups
from moto.elbv2 import models as elbv2
from moto.server import main

# Security-group rules with an IP protocol number and no ports (CAPA's default Calico rule is protocol 4,
# IP-in-IP; a CNI may ask for 50, ESP). AWS accepts them: for a protocol other than tcp, udp, icmp and icmpv6,
# "traffic on all ports is allowed, regardless of any ports you specify" (EC2 API reference, IpPermission), and
# describes them without ports. moto 5.2.6 calls int(None) on the missing ports (security_groups.py line 65)
# and answers HTTP 500. Here the rule is made with placeholder ports, then stored without any, as AWS shows it.
_PORTED = {"tcp", "udp", "icmp", "icmpv6", "6", "17", "1", "58", "-1", "all"}
_rule_init = security_groups.SecurityGroupRule.__init__


def _rule_init_without_ports(self, ec2_backend, ip_protocol, group_id, from_port, to_port, *args, **kwargs):
    portless = ip_protocol is not None and str(ip_protocol).lower() not in _PORTED and from_port is None
    if portless:
        from_port = to_port = "-1"
    _rule_init(self, ec2_backend, ip_protocol, group_id, from_port, to_port, *args, **kwargs)
    if portless:
        self.from_port = self.to_port = None


security_groups.SecurityGroupRule.__init__ = _rule_init_without_ports

# ELBv2 DescribeTargetGroups by LoadBalancerArn, for a load balancer with no target groups yet: AWS answers an
# empty list; moto 5.2.6 raises TargetGroupNotFound (elbv2/models.py describe_target_groups), which stops CAPA's
# NLB path before it creates the API server's target group. Other lookups (ARNs, names) keep moto's answers.
_describe_target_groups = elbv2.ELBv2Backend.describe_target_groups


def _describe_target_groups_by_load_balancer(self, load_balancer_arn, target_group_arns, names):
    if load_balancer_arn and not target_group_arns and not names and load_balancer_arn in self.load_balancers:
        return sorted(
            (tg for tg in self.target_groups.values() if load_balancer_arn in tg.load_balancer_arns),
            key=lambda tg: tg.name,
        )
    return _describe_target_groups(self, load_balancer_arn, target_group_arns, names)


elbv2.ELBv2Backend.describe_target_groups = _describe_target_groups_by_load_balancer

if __name__ == "__main__":
    main(sys.argv[1:])
