package ztunnel

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
)

func TestParseIdentityDump(t *testing.T) {
	tests := []struct {
		file      string
		wantIDs   map[string]string // address -> SPIFFE identity
		wantCerts int
		wantConns int
	}{
		{file: filepath.Join("testdata", "configdump_array.json"), wantIDs: map[string]string{
			"10.244.1.5": "spiffe://cluster.local/ns/shop/sa/web",
			"10.244.1.6": "spiffe://cluster.local/ns/shop/sa/db",
		}, wantCerts: 2},
		{file: filepath.Join("testdata", "configdump_object.json"), wantIDs: map[string]string{
			"10.244.1.5": "spiffe://cluster.local/ns/shop/sa/web",
			"10.244.1.6": "spiffe://cluster.local/ns/shop/sa/db",
		}},
		{file: fixtures.Path("pcap", "ztunnel-config_dump.json"), wantIDs: map[string]string{
			"10.99.163.1": "spiffe://cluster.local/ns/a/sa/x",
			"10.99.163.2": "spiffe://cluster.local/ns/b/sa/y",
			"10.99.163.3": "spiffe://cluster.local/ns/a/sa/default",
		}, wantCerts: 2, wantConns: 1},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			body, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := ParseIdentityDump(body)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, w := range d.Workloads {
				for _, a := range w.Addresses {
					got[a.String()] = w.SPIFFE()
				}
			}
			if len(got) != len(tt.wantIDs) {
				t.Errorf("identities = %v, want %v", got, tt.wantIDs)
			}
			for a, id := range tt.wantIDs {
				if got[a] != id {
					t.Errorf("%s: identity %q, want %q", a, got[a], id)
				}
			}
			if len(d.Certificates) != tt.wantCerts || len(d.Connections) != tt.wantConns {
				t.Errorf("certificates %d, connections %d; want %d, %d", len(d.Certificates), len(d.Connections), tt.wantCerts, tt.wantConns)
			}
		})
	}
}

func TestParseIdentityDumpWorkloadState(t *testing.T) {
	body := []byte(`{
	  "workloads": [{"uid": "c1//Pod/a/client", "name": "client", "namespace": "a", "serviceAccount": "x", "trustDomain": "corp.example", "workloadIps": ["::ffff:10.0.0.1"], "protocol": "HBONE"}],
	  "workloadState": {"c1//Pod/a/client": {"state": "Up", "info": {"name": "client", "namespace": "a", "serviceAccount": "x"},
	    "connections": {"inbound": [{"src": "10.0.0.9:5000", "originalDst": "10.0.0.1:8080", "actualDst": "10.0.0.1:15008", "protocol": "HBONE"}],
	                    "outbound": [{"src": "10.0.0.1:4000", "originalDst": "10.0.0.2:80", "actualDst": "10.0.0.2:80", "protocol": "TCP"}]}}}
	}`)
	d, err := ParseIdentityDump(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Workloads) != 1 || d.Workloads[0].Addresses[0] != netip.MustParseAddr("10.0.0.1") || d.Workloads[0].SPIFFE() != "spiffe://corp.example/ns/a/sa/x" {
		t.Fatalf("workloads = %+v", d.Workloads)
	}
	if len(d.Connections) != 2 {
		t.Fatalf("connections = %+v", d.Connections)
	}
	in, out := d.Connections[0], d.Connections[1]
	if in.Direction != "inbound" || in.ActualDst.Port() != 15008 || in.Pod != "a/client" || in.Identity != "spiffe://corp.example/ns/a/sa/x" {
		t.Errorf("inbound = %+v", in)
	}
	if out.Direction != "outbound" || out.Protocol != "TCP" || out.Src != netip.MustParseAddrPort("10.0.0.1:4000") {
		t.Errorf("outbound = %+v", out)
	}
	for _, bad := range []string{`{"workloads": 5}`, `not json`, `{"workloads": [{"workloadIps": 3}]}`} {
		if _, err := ParseIdentityDump([]byte(bad)); err == nil {
			t.Errorf("ParseIdentityDump(%s): no error", bad)
		}
	}
}
