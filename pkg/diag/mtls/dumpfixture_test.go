package mtls

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/hack/sim/hbone"
)

// dumpWorkload is one workload of a config_dump made by caConfigDump.
type dumpWorkload struct {
	IP, Namespace, Name, SA, Protocol string
	// Cert: ztunnel holds a certificate for this workload's identity.
	Cert bool
}

// caConfigDump writes a config_dump (current shape) the way ztunnel would
// for these workloads, with certificates issued by the test CA for the
// identities of those with Cert: real PEM, serial and validity.
func caConfigDump(t *testing.T, ca *hbone.CA, ws []dumpWorkload) []byte {
	t.Helper()
	type chainEntry struct {
		PEM            string `json:"pem"`
		SerialNumber   string `json:"serialNumber"`
		ValidFrom      string `json:"validFrom"`
		ExpirationTime string `json:"expirationTime"`
	}
	entry := func(der []byte, serial fmt.Stringer, from, to time.Time) chainEntry {
		return chainEntry{
			PEM:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			SerialNumber: "0x" + fmt.Sprintf("%x", serial), ValidFrom: from.UTC().Format(time.RFC3339), ExpirationTime: to.UTC().Format(time.RFC3339),
		}
	}
	root := entry(ca.Cert.Raw, ca.Cert.SerialNumber, ca.Cert.NotBefore, ca.Cert.NotAfter)
	var workloads, certs []map[string]any
	state := map[string]any{}
	for _, w := range ws {
		uid := "Kubernetes//Pod/" + w.Namespace + "/" + w.Name
		workloads = append(workloads, map[string]any{
			"uid": uid, "name": w.Name, "namespace": w.Namespace, "serviceAccount": w.SA,
			"trustDomain": ca.TrustDomain, "workloadIps": []string{w.IP}, "protocol": w.Protocol, "status": "Healthy",
		})
		if !w.Cert {
			continue
		}
		c, err := ca.Issue(w.Namespace, w.SA)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Leaf.URIs) != 1 || c.Leaf.URIs[0].String() != ca.SPIFFEID(w.Namespace, w.SA) {
			t.Fatalf("test CA issued %v for %s/%s", c.Leaf.URIs, w.Namespace, w.SA)
		}
		certs = append(certs, map[string]any{
			"identity":  ca.SPIFFEID(w.Namespace, w.SA),
			"state":     "Available",
			"certChain": []chainEntry{entry(c.Leaf.Raw, c.Leaf.SerialNumber, c.Leaf.NotBefore, c.Leaf.NotAfter)},
			"rootCerts": []chainEntry{root},
		})
		state[uid] = map[string]any{
			"state":       "Up",
			"info":        map[string]any{"name": w.Name, "namespace": w.Namespace, "serviceAccount": w.SA},
			"connections": map[string]any{"inbound": []any{}, "outbound": []any{}},
		}
	}
	b, err := json.MarshalIndent(map[string]any{
		"workloads": workloads, "services": []any{}, "policies": []any{}, "certificates": certs, "workloadState": state,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
