{{- define "kaas-proxy.labels" -}}
app.kubernetes.io/name: kaas-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kaas-proxy.selector" -}}
app.kubernetes.io/name: kaas-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
