{{- define "istiod.name" -}}istiod{{- if .Values.revision }}-{{ .Values.revision }}{{- end }}{{- end }}
{{- define "istiod.labels" -}}
app: istiod
istio: pilot
istio.io/rev: {{ .Values.revision | default "default" }}
app.kubernetes.io/name: istiod
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
