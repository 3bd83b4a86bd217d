{{- define "kaas-controller.labels" -}}
app.kubernetes.io/name: kaas-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kaas-controller.selector" -}}
app.kubernetes.io/name: kaas-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
