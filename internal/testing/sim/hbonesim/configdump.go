package hbonesim

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// DumpWorkload is one workload of a config_dump made by CA.ConfigDump.
type DumpWorkload struct {
	IP, Namespace, Name, ServiceAccount, Protocol string
	// Cert: the ztunnel holds a certificate for this workload's identity.
	Cert bool
}

type dumpChainEntry struct {
	PEM            string `json:"pem"`
	SerialNumber   string `json:"serialNumber"`
	ValidFrom      string `json:"validFrom"`
	ExpirationTime string `json:"expirationTime"`
}

func chainEntry(der []byte, serial *big.Int, from, to time.Time) dumpChainEntry {
	return dumpChainEntry{
		PEM:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		SerialNumber: fmt.Sprintf("0x%x", serial), ValidFrom: from.UTC().Format(time.RFC3339), ExpirationTime: to.UTC().Format(time.RFC3339),
	}
}

// ConfigDump writes the JSON a ztunnel's admin /config_dump would serve for
// these workloads (current shape: workloads as an array, workloadState per
// pod UID), with certificates this CA issues for the identities of those
// with Cert: real PEM, serial and validity, state Available.
func (ca *CA) ConfigDump(ws []DumpWorkload) ([]byte, error) {
	root := chainEntry(ca.Cert.Raw, ca.Cert.SerialNumber, ca.Cert.NotBefore, ca.Cert.NotAfter)
	workloads, certs := []map[string]any{}, []map[string]any{}
	state := map[string]any{}
	for _, w := range ws {
		uid := "Kubernetes//Pod/" + w.Namespace + "/" + w.Name
		workloads = append(workloads, map[string]any{
			"uid": uid, "name": w.Name, "namespace": w.Namespace, "serviceAccount": w.ServiceAccount,
			"trustDomain": ca.TrustDomain, "workloadIps": []string{w.IP}, "protocol": w.Protocol, "status": "Healthy",
		})
		if !w.Cert {
			continue
		}
		c, err := ca.Issue(w.Namespace, w.ServiceAccount)
		if err != nil {
			return nil, err
		}
		certs = append(certs, map[string]any{
			"identity":  ca.SPIFFEID(w.Namespace, w.ServiceAccount),
			"state":     "Available",
			"certChain": []dumpChainEntry{chainEntry(c.Leaf.Raw, c.Leaf.SerialNumber, c.Leaf.NotBefore, c.Leaf.NotAfter)},
			"rootCerts": []dumpChainEntry{root},
		})
		state[uid] = map[string]any{
			"state":       "Up",
			"info":        map[string]any{"name": w.Name, "namespace": w.Namespace, "serviceAccount": w.ServiceAccount},
			"connections": map[string]any{"inbound": []any{}, "outbound": []any{}},
		}
	}
	return json.MarshalIndent(map[string]any{
		"workloads": workloads, "services": []any{}, "policies": []any{}, "certificates": certs, "workloadState": state,
	}, "", "  ")
}
