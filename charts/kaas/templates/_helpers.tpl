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
