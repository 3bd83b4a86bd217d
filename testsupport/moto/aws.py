"""Reads and seeds what moto holds, for kaas-testsupport (src/capi/moto.rs), with boto3 from the moto venv.

    aws.py ENDPOINT REGION instance-profiles NAME...   creates each IAM role + instance profile of that name
    aws.py ENDPOINT REGION key-pair NAME               creates an EC2 key pair
    aws.py ENDPOINT REGION snapshot                    prints one JSON object (see Snapshot in moto.rs)

Errors go to stderr with a non-zero exit; every call has a bounded timeout and no retries.
"""

import json
import sys

import boto3
from botocore.config import Config


def client(endpoint, region, service):
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1})
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def rule(permission):
    return {
        "protocol": permission["IpProtocol"],
        "from_port": permission.get("FromPort"),
        "to_port": permission.get("ToPort"),
        "source_groups": sorted(p["GroupId"] for p in permission.get("UserIdGroupPairs") or []),
        "cidrs": sorted(r["CidrIp"] for r in permission.get("IpRanges") or []),
    }


def snapshot(endpoint, region):
    ec2 = client(endpoint, region, "ec2")
    groups = [
        {
            "id": g["GroupId"],
            "name": g["GroupName"],
            "vpc": g.get("VpcId"),
            "tags": tags(g),
            "ingress": [rule(p) for p in g.get("IpPermissions") or []],
        }
        for g in ec2.describe_security_groups()["SecurityGroups"]
    ]
    subnets = [
        {"id": s["SubnetId"], "vpc": s["VpcId"], "zone": s["AvailabilityZone"], "tags": tags(s)}
        for s in ec2.describe_subnets()["Subnets"]
    ]
    instances = []
    for reservation in ec2.describe_instances()["Reservations"]:
        for i in reservation["Instances"]:
            instances.append(
                {
                    "id": i["InstanceId"],
                    "state": i["State"]["Name"],
                    "instance_type": i["InstanceType"],
                    "image": i["ImageId"],
                    "key_name": i.get("KeyName"),
                    "zone": i["Placement"]["AvailabilityZone"],
                    "subnet": i.get("SubnetId"),
                    "metadata_options": i.get("MetadataOptions") or {},
                    "tags": tags(i),
                }
            )
    images = [
        {"id": m["ImageId"], "name": m["Name"], "owner": m.get("OwnerId"), "architecture": m.get("Architecture")}
        for m in ec2.describe_images()["Images"]
    ]
    load_balancers = [
        {"name": lb["LoadBalancerName"], "kind": "classic", "scheme": lb.get("Scheme")}
        for lb in client(endpoint, region, "elb").describe_load_balancers()["LoadBalancerDescriptions"]
    ] + [
        {"name": lb["LoadBalancerName"], "kind": lb["Type"], "scheme": lb.get("Scheme")}
        for lb in client(endpoint, region, "elbv2").describe_load_balancers()["LoadBalancers"]
    ]
    vpcs = [{"id": v["VpcId"], "tags": tags(v)} for v in ec2.describe_vpcs()["Vpcs"]]
    return {
        "vpcs": vpcs,
        "security_groups": groups,
        "subnets": subnets,
        "instances": instances,
        "images": images,
        "load_balancers": load_balancers,
    }


def instance_profiles(endpoint, region, names):
    iam = client(endpoint, region, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    for name in names:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    endpoint, region, command, args = argv[0], argv[1], argv[2], argv[3:]
    if command == "snapshot":
        json.dump(snapshot(endpoint, region), sys.stdout)
    elif command == "instance-profiles":
        instance_profiles(endpoint, region, args)
    elif command == "key-pair" and len(args) == 1:
        client(endpoint, region, "ec2").create_key_pair(KeyName=args[0])
    else:
        sys.exit(f"unknown command {command} {args}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
