// Package hbone is a TEST-ONLY traffic generator. It is not part of the
// kubectl-ambient binary and must never be imported from non-test code.
//
// It makes real HBONE-like traffic the way ztunnel does on the wire: a
// self-made CA issues workload certificates with SPIFFE URI SANs
// (spiffe://<trust-domain>/ns/<ns>/sa/<sa>); the client opens TLS 1.3 with
// mutual authentication, ALPN h2 and no SNI to port 15008, and tunnels a TCP
// stream inside an HTTP/2 CONNECT to podIP:port. It also makes the plaintext
// and plain-TLS (with SNI) traffic the verdict tests need as controls, and
// helpers to run those endpoints inside network namespaces.
package hbonesim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sync/atomic"
	"time"
)

// CA is a throwaway certificate authority for one test.
type CA struct {
	TrustDomain string
	Cert        *x509.Certificate
	Pool        *x509.CertPool
	key         crypto.Signer
}

// NewCA makes a CA for trustDomain (for example "cluster.local").
func NewCA(trustDomain string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"hbone-sim"}, CommonName: "hbone-sim root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{TrustDomain: trustDomain, Cert: cert, Pool: pool, key: key}, nil
}

// SPIFFEID is the identity ztunnel gives a service account.
func (ca *CA) SPIFFEID(ns, sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", ca.TrustDomain, ns, sa)
}

var serial atomic.Int64

// Issue makes a workload certificate whose only SAN is the SPIFFE URI of
// ns/sa, usable for both client and server authentication.
func (ca *CA) Issue(ns, sa string) (tls.Certificate, error) {
	return ca.issue(ca.SPIFFEID(ns, sa), nil)
}

// IssueDNS makes a plain server certificate for a host name (the plain TLS control).
func (ca *CA) IssueDNS(host string) (tls.Certificate, error) {
	return ca.issue("", []string{host})
}

func (ca *CA) issue(spiffe string, dns []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
	}
	if spiffe != "" {
		u, err := url.Parse(spiffe)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// verifySPIFFE checks the peer chain against the CA and, when want is set,
// that the leaf carries exactly that SPIFFE ID: ztunnel authenticates
// identities, not host names.
func (ca *CA) verifySPIFFE(want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("hbone-sim: peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("hbone-sim: verify peer: %w", err)
		}
		if want == "" {
			return nil
		}
		for _, u := range leaf.URIs {
			if u.String() == want {
				return nil
			}
		}
		return fmt.Errorf("hbone-sim: peer identity is not %s", want)
	}
}

// ServerConfig is ztunnel's inbound TLS: TLS 1.3 only, ALPN h2, a client
// certificate from the mesh CA required.
func (ca *CA) ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{"h2"},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: ca.verifySPIFFE(""),
	}
}

// ClientConfig is ztunnel's outbound TLS: TLS 1.3 only, ALPN h2, no SNI, the
// workload certificate, and the server identity checked by SPIFFE ID.
func (ca *CA) ClientConfig(cert tls.Certificate, serverID string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		// No ServerName means no SNI; the identity check below replaces host
		// name verification, as in ztunnel.
		InsecureSkipVerify:     true, //nolint:gosec // verified by VerifyConnection
		VerifyConnection:       ca.verifySPIFFE(serverID),
		SessionTicketsDisabled: true,
	}
}
