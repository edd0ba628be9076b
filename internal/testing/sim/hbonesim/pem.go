package hbonesim

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Save writes the CA's certificate and key (PEM, mode 0600) into dir, so a
// separate test process (the meshclient stand-in) can issue certificates
// the test's HBONE servers trust.
func (ca *CA) Save(dir string) error {
	key, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	files := map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: ca.Cert.Raw},
		"ca-key.pem": {Type: "PRIVATE KEY", Bytes: key},
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "trust-domain"), []byte(ca.TrustDomain), 0o600)
}

// LoadCA reads a CA written by Save.
func LoadCA(dir string) (*CA, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", name)
		}
		return blk.Bytes, nil
	}
	certDER, err := read("ca.pem")
	if err != nil {
		return nil, err
	}
	keyDER, err := read("ca-key.pem")
	if err != nil {
		return nil, err
	}
	td, err := os.ReadFile(filepath.Join(dir, "trust-domain"))
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("ca-key.pem: not a signing key")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{TrustDomain: string(td), Cert: cert, Pool: pool, key: signer}, nil
}
