package ztunnel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// rawDump mirrors the top level of ztunnel's /config_dump. Workloads and
// services are arrays in current ztunnel and objects keyed by address in
// older releases, so they stay raw until their shape is known.
type rawDump struct {
	Workloads    json.RawMessage `json:"workloads"`
	Services     json.RawMessage `json:"services"`
	Certificates []rawCert       `json:"certificates"`
	// WorkloadState is keyed by pod UID; the info names the pod.
	WorkloadState map[string]rawWorkloadState `json:"workloadState"`
}

type rawWorkloadState struct {
	State string `json:"state"`
	Info  struct {
		Name           string `json:"name"`
		Namespace      string `json:"namespace"`
		ServiceAccount string `json:"serviceAccount"`
	} `json:"info"`
	Connections struct {
		Inbound  []rawConnection `json:"inbound"`
		Outbound []rawConnection `json:"outbound"`
	} `json:"connections"`
}

type rawConnection struct {
	Src         string `json:"src"`
	OriginalDst string `json:"originalDst"`
	ActualDst   string `json:"actualDst"`
	Protocol    string `json:"protocol"`
}

type rawWorkload struct {
	UID            string   `json:"uid"`
	Name           string   `json:"name"`
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount"`
	TrustDomain    string   `json:"trustDomain"`
	Node           string   `json:"node"`
	WorkloadIPs    []string `json:"workloadIps"`
	Protocol       string   `json:"protocol"`
	Status         string   `json:"status"`
}

// addresses are the workload's IPs; older dumps key workloads by
// "network/address" (or the address) instead of listing them.
func (w *rawWorkload) addresses(key string) []string {
	if len(w.WorkloadIPs) == 0 && !strings.HasPrefix(key, "\x00") {
		return []string{key[strings.LastIndexByte(key, '/')+1:]}
	}
	return w.WorkloadIPs
}

type rawCert struct {
	Identity  string `json:"identity"`
	State     string `json:"state"`
	CertChain []struct {
		SerialNumber   string `json:"serialNumber"`
		ValidFrom      string `json:"validFrom"`
		ExpirationTime string `json:"expirationTime"`
	} `json:"certChain"`
}

// ParseConfigDump reads ztunnel's admin /config_dump in either shape.
func ParseConfigDump(body []byte) (*ConfigDump, error) {
	raw, ws, err := decodeDump(body)
	if err != nil {
		return nil, err
	}
	return raw.configDump(ws)
}

// decodeDump reads the JSON once, with the workloads in either shape.
func decodeDump(body []byte) (*rawDump, map[string]rawWorkload, error) {
	var raw rawDump
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, fmt.Errorf("parse ztunnel config_dump: %w", err)
	}
	ws, err := decodeWorkloads(raw.Workloads)
	if err != nil {
		return nil, nil, fmt.Errorf("parse ztunnel config_dump workloads: %w", err)
	}
	return &raw, ws, nil
}

// decodeWorkloads reads the workloads in the three shapes ztunnel has
// written: an array (current), an object keyed by "network/address" (older),
// and the workload store itself, {"by_addr": {address: workload},
// "by_uid": {uid: workload}} (ztunnel of Istio 1.19-1.21). A workload without
// a name and a uid means a shape this parser does not know: that is an
// error naming the keys it found, never an empty list.
func decodeWorkloads(raw json.RawMessage) (map[string]rawWorkload, error) {
	if store, ok, err := decodeWorkloadStore(raw); ok || err != nil {
		return store, err
	}
	ws, err := decodeList[rawWorkload](raw)
	if err != nil {
		return nil, err
	}
	for key, w := range ws {
		if w.Name == "" && w.UID == "" {
			return nil, fmt.Errorf("entry %q has neither name nor uid: unknown config_dump shape (workloads keyed by %s)", strings.TrimPrefix(key, "\x00"), describeKeys(ws))
		}
	}
	return ws, nil
}

// decodeWorkloadStore reads the by_addr/by_uid shape; ok is false when raw
// is not in it.
func decodeWorkloadStore(raw json.RawMessage) (map[string]rawWorkload, bool, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, false, nil //nolint:nilerr // decodeList reports the syntax error with the shape it expected
	}
	byAddrRaw, hasAddr := top["by_addr"]
	byUIDRaw, hasUID := top["by_uid"]
	if !hasAddr && !hasUID {
		return nil, false, nil
	}
	var byUID map[string]rawWorkload
	if hasUID {
		if err := json.Unmarshal(byUIDRaw, &byUID); err != nil {
			return nil, true, fmt.Errorf("by_uid (ztunnel 1.19-1.21 shape): %w", err)
		}
	}
	// by_addr values are one workload, or a list of them when several share
	// an address (host-network pods).
	var byAddr map[string]json.RawMessage
	if hasAddr {
		if err := json.Unmarshal(byAddrRaw, &byAddr); err != nil {
			return nil, true, fmt.Errorf("by_addr (ztunnel 1.19-1.21 shape): %w", err)
		}
	}
	out := make(map[string]rawWorkload, len(byUID))
	keyOf := func(uid string, w rawWorkload) string {
		if uid == "" {
			uid = w.Namespace + "/" + w.Name
		}
		return "\x00uid:" + uid
	}
	for uid, w := range byUID {
		if w.UID == "" {
			w.UID = uid
		}
		out[keyOf(uid, w)] = w
	}
	addrs := map[string][]string{}
	for addr, v := range byAddr {
		var list []rawWorkload
		if err := json.Unmarshal(v, &list); err != nil {
			var one rawWorkload
			if err := json.Unmarshal(v, &one); err != nil {
				return nil, true, fmt.Errorf("by_addr entry %q (ztunnel 1.19-1.21 shape): %w", addr, err)
			}
			list = []rawWorkload{one}
		}
		for _, w := range list {
			k := keyOf(w.UID, w)
			if _, ok := out[k]; !ok {
				out[k] = w
			}
			addrs[k] = append(addrs[k], addr[strings.LastIndexByte(addr, '/')+1:])
		}
	}
	for k, w := range out {
		if w.Name == "" && w.UID == "" {
			return nil, true, fmt.Errorf("a workload in by_addr/by_uid (ztunnel 1.19-1.21 shape) has neither name nor uid")
		}
		if len(w.WorkloadIPs) == 0 && len(addrs[k]) > 0 {
			sort.Strings(addrs[k])
			w.WorkloadIPs = addrs[k]
			out[k] = w
		}
	}
	return out, true, nil
}

// decodeServices counts the services: an array, an object keyed by address,
// or (ztunnel of Istio 1.19-1.21) the service store, whose by_host map has
// one entry per namespace/hostname.
func decodeServices(raw json.RawMessage) (int, error) {
	svcs, err := decodeList[json.RawMessage](raw)
	if err != nil {
		return 0, err
	}
	if byHost, ok := svcs["by_host"]; ok {
		hosts, err := decodeList[json.RawMessage](byHost)
		if err != nil {
			return 0, fmt.Errorf("by_host (ztunnel 1.19-1.21 shape): %w", err)
		}
		return len(hosts), nil
	}
	return len(svcs), nil
}

// describeKeys names up to three keys of a decoded object, for errors.
func describeKeys[T any](m map[string]T) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, strings.TrimPrefix(k, "\x00"))
	}
	sort.Strings(keys)
	if len(keys) > 3 {
		keys = append(keys[:3], "...")
	}
	return strings.Join(keys, ", ")
}

func (raw *rawDump) configDump(ws map[string]rawWorkload) (*ConfigDump, error) {
	out := &ConfigDump{}
	for key, w := range ws {
		out.Workloads = append(out.Workloads, Workload{
			Name: w.Name, Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Node: w.Node,
			Addresses: w.addresses(key), Protocol: w.Protocol, Status: w.Status,
		})
	}
	joinProxyStates(out, raw.WorkloadState)
	sort.Slice(out.Workloads, func(i, j int) bool {
		a, b := out.Workloads[i], out.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	svcs, err := decodeServices(raw.Services)
	if err != nil {
		return nil, fmt.Errorf("parse ztunnel config_dump services: %w", err)
	}
	out.Services = svcs
	for _, c := range raw.Certificates {
		cert := Certificate{Identity: c.Identity, State: c.State}
		// The leaf is first in the chain; its expiry is the one that matters.
		if len(c.CertChain) > 0 {
			leaf := c.CertChain[0]
			cert.Serial = leaf.SerialNumber
			cert.ValidFrom = parseTime(leaf.ValidFrom)
			cert.Expiration = parseTime(leaf.ExpirationTime)
		}
		out.Certificates = append(out.Certificates, cert)
	}
	sort.Slice(out.Certificates, func(i, j int) bool { return out.Certificates[i].Identity < out.Certificates[j].Identity })
	return out, nil
}

// joinProxyStates sets each workload's proxy state (Up, Pending) from
// workloadState. Its keys are pod UIDs, which the workloads list does not
// carry, so pods are matched by namespace and name; a pod ztunnel holds a
// proxy for but has no workload entry of is added, so a pending one is
// never hidden.
func joinProxyStates(out *ConfigDump, states map[string]rawWorkloadState) {
	if len(states) == 0 {
		return
	}
	byPod := make(map[string]int, len(out.Workloads))
	for i, w := range out.Workloads {
		byPod[w.Namespace+"/"+w.Name] = i
	}
	for _, st := range states {
		if i, ok := byPod[st.Info.Namespace+"/"+st.Info.Name]; ok {
			out.Workloads[i].ProxyState = st.State
			continue
		}
		out.Workloads = append(out.Workloads, Workload{Name: st.Info.Name, Namespace: st.Info.Namespace,
			ServiceAccount: st.Info.ServiceAccount, ProxyState: st.State})
	}
}

// decodeList accepts a JSON array or an object keyed by address; for an
// object the keys are returned alongside (empty for arrays).
func decodeList[T any](raw json.RawMessage) (map[string]T, error) {
	out := map[string]T{}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return out, nil
	}
	switch trimmed[0] {
	case '[':
		var list []T
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, err
		}
		for i, v := range list {
			// Array entries have no key; a private index keeps them distinct.
			out[fmt.Sprintf("\x00%08d", i)] = v
		}
		return out, nil
	case '{':
		if err := json.Unmarshal(trimmed, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected an array or an object, got %q", truncate(string(trimmed), 20))
}

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return &t
		}
	}
	return nil
}

// AccessLog is one "connection complete" line of ztunnel's access log.
type AccessLog struct {
	Time          time.Time `json:"time"`
	Direction     string    `json:"direction,omitempty"`
	SrcAddr       string    `json:"srcAddr,omitempty"`
	SrcWorkload   string    `json:"srcWorkload,omitempty"`
	SrcNamespace  string    `json:"srcNamespace,omitempty"`
	SrcIdentity   string    `json:"srcIdentity,omitempty"`
	DstAddr       string    `json:"dstAddr,omitempty"`
	DstHBONEAddr  string    `json:"dstHboneAddr,omitempty"`
	DstService    string    `json:"dstService,omitempty"`
	DstWorkload   string    `json:"dstWorkload,omitempty"`
	DstNamespace  string    `json:"dstNamespace,omitempty"`
	DstIdentity   string    `json:"dstIdentity,omitempty"`
	BytesSent     string    `json:"bytesSent,omitempty"`
	BytesReceived string    `json:"bytesRecv,omitempty"`
	Duration      string    `json:"duration,omitempty"`
	Error         string    `json:"error,omitempty"`
	// MTLS is true when both identities are present (ztunnel logs them only for mTLS).
	MTLS bool `json:"mtls"`
}

// ParseAccessLog extracts the "connection complete" lines from ztunnel's log
// output. A CRI log prefix ("<time> stdout F ") is accepted and removed.
func ParseAccessLog(body []byte) []AccessLog {
	var out []AccessLog
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if e, ok := ParseAccessLogLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out
}

// ParseAccessLogLine parses one ztunnel log line; ok is false for lines that
// are not access log entries.
func ParseAccessLogLine(line string) (AccessLog, bool) {
	idx := strings.Index(line, "connection complete")
	if idx < 0 {
		return AccessLog{}, false
	}
	var e AccessLog
	head := strings.Fields(line[:idx])
	// With a CRI prefix there are two timestamps; ztunnel's own is the later field.
	for _, f := range head {
		if t, err := time.Parse(time.RFC3339Nano, f); err == nil {
			e.Time = t
		}
	}
	for k, v := range splitKV(line[idx+len("connection complete"):]) {
		switch k {
		case "src.addr":
			e.SrcAddr = v
		case "src.workload":
			e.SrcWorkload = v
		case "src.namespace":
			e.SrcNamespace = v
		case "src.identity":
			e.SrcIdentity = v
		case "dst.addr":
			e.DstAddr = v
		case "dst.hbone_addr":
			e.DstHBONEAddr = v
		case "dst.service":
			e.DstService = v
		case "dst.workload":
			e.DstWorkload = v
		case "dst.namespace":
			e.DstNamespace = v
		case "dst.identity":
			e.DstIdentity = v
		case "direction":
			e.Direction = v
		case "bytes_sent":
			e.BytesSent = v
		case "bytes_recv":
			e.BytesReceived = v
		case "duration":
			e.Duration = v
		case "error":
			e.Error = v
		}
	}
	e.MTLS = e.SrcIdentity != "" && e.DstIdentity != ""
	return e, true
}

// splitKV reads space-separated key=value pairs whose values may be quoted.
func splitKV(s string) map[string]string {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return out
		}
		key := s[:eq]
		if sp := strings.IndexAny(key, " \t"); sp >= 0 {
			s = s[sp:]
			continue
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			val = b.String()
			if j < len(s) {
				j++
			}
			s = s[j:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		out[key] = val
	}
}
