{{- define "kaas.labels" -}}
app.kubernetes.io/name: kaas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- /* Flux packages the chart from Git as <version>+<commit> (reconcileStrategy: Revision); "+" is no label character. */}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
kaas.dev/tenant: {{ .Values.tenant }}
{{- end -}}

{{- define "kaas.cluster" -}}
{{ .Release.Name }}
{{- end -}}

{{/* The brokers' VolumeAttributesClass: the storage class's name and the figures it sets. */}}
{{- define "kaas.volumeAttributesClass" -}}
{{ .Values.kafka.storage.class }}-{{ .Values.kafka.storage.throughputMiBps }}mibps-{{ .Values.kafka.storage.iops }}iops
{{- end }}


{{/* A load-balancer listener's configuration, from .listener (.Values.kafka.proxyListener) and the name
external-dns publishes for its bootstrap load balancer (.published, may be empty): that name as an annotation
and on every broker's certificate (bootstrap.alternativeNames); the annotations; the source ranges, which
Strimzi 1.2.0 sets on the bootstrap and per-broker Services (KafkaCluster.java l.755-758, l.846) and which the
cloud controller opens the NodePorts to, else to 0.0.0.0/0 (cloud-provider-aws v1.34.0
pkg/providers/v1/aws.go l.2308-2313). Nothing when there is nothing to say. */}}
{{- define "kaas.loadBalancerConfiguration" -}}
{{- $annotations := deepCopy (.listener.annotations | default dict) }}
{{- $bootstrap := dict }}
{{- with .published }}
{{- $_ := set $annotations "external-dns.alpha.kubernetes.io/hostname" . }}
{{- $_ := set $bootstrap "alternativeNames" (list .) }}
{{- end }}
{{- with $annotations }}
{{- $_ := set $bootstrap "annotations" . }}
{{- end }}
{{- $config := dict }}
{{- with $bootstrap }}
{{- $_ := set $config "bootstrap" . }}
{{- end }}
{{- with .listener.sourceRanges }}
{{- $_ := set $config "loadBalancerSourceRanges" . }}
{{- end }}
{{- with $config }}
configuration:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A node pool's resources and heap, from {cpuMillis, memoryMiB, heapMiB}: memory requested and limited alike
(the pod is evicted after BestEffort and Burstable pods that exceed their requests), no CPU limit (throttling
stalls request handling; the request reserves the share), and a fixed heap (-Xms = -Xmx, so Strimzi's dynamic
default of half the memory limit, at most 5 GiB, does not apply: KafkaCluster.java l.1646 at 1.2.0); the rest
of the memory is page cache, which serves consumers' reads. */}}
{{- define "kaas.podResources" -}}
resources:
  requests:
    cpu: {{ printf "%dm" (int .cpuMillis) }}
    memory: {{ printf "%dMi" (int .memoryMiB) }}
  limits:
    memory: {{ printf "%dMi" (int .memoryMiB) }}
jvmOptions:
  -Xms: {{ printf "%dm" (int .heapMiB) }}
  -Xmx: {{ printf "%dm" (int .heapMiB) }}
{{- end }}

{{/* A required node affinity to the nodes whose label (first) has the value (second). Strimzi adds its rack
     term to each of these terms (ModelUtils.java affinityWithRackLabelSelector at 1.2.0). */}}
{{- define "kaas.onPool" -}}
requiredDuringSchedulingIgnoredDuringExecution:
  nodeSelectorTerms:
    - matchExpressions:
        - key: {{ index . 0 }}
          operator: In
          values: [{{ index . 1 | quote }}]
{{- end }}
