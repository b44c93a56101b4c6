// Package hostkeys loads the server's SSH host keys from explicit paths, creating them on first
// run, so clients see the same fingerprint across restarts. Like sshd, it refuses a private key
// that group or others can read.
package hostkeys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// Kind is a host key algorithm.
type Kind string

// The supported kinds.
const (
	Ed25519 Kind = "ed25519"
	RSA     Kind = "rsa"
)

// Key is a loaded host key.
type Key struct {
	Path        string
	Kind        Kind
	Signer      gossh.Signer
	PEM         []byte // the private key file's contents (OpenSSH format)
	Fingerprint string // SHA256:... as OpenSSH prints it
	Created     bool   // true when this call generated the key
}

// LoadOrCreate reads the private key at path, or generates one of the given kind there (mode
// 0600, parent directory 0700) when the file does not exist. A key file readable or writable
// by group or others is refused, as is a file whose key is not of the requested kind.
func LoadOrCreate(path string, kind Kind) (*Key, error) {
	if kind != Ed25519 && kind != RSA {
		return nil, fmt.Errorf("host key %s: unknown kind %q", path, kind)
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return create(path, kind)
	case err != nil:
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("host key %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("host key %s: permissions %04o are too open; it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("host key %s: parse: %w", path, err)
	}
	if got := kindOf(signer); got != kind {
		return nil, fmt.Errorf("host key %s: holds a %s key, want %s", path, got, kind)
	}
	return &Key{Path: path, Kind: kind, Signer: signer, PEM: data,
		Fingerprint: gossh.FingerprintSHA256(signer.PublicKey())}, nil
}

func kindOf(s gossh.Signer) Kind {
	switch s.PublicKey().Type() {
	case gossh.KeyAlgoED25519:
		return Ed25519
	case gossh.KeyAlgoRSA:
		return RSA
	}
	return Kind(s.PublicKey().Type())
}

func create(path string, kind Kind) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch kind {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s host key: %w", kind, err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "whalemountain host key")
	if err != nil {
		return nil, fmt.Errorf("encode %s host key: %w", kind, err)
	}
	data := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("host key %s: create directory: %w", path, err)
	}
	// O_EXCL: never overwrite a key another process created in the meantime.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host key %s: create: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("host key %s: write: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("host key %s: write: %w", path, err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	return &Key{Path: path, Kind: kind, Signer: signer, PEM: data, Created: true,
		Fingerprint: gossh.FingerprintSHA256(signer.PublicKey())}, nil
}
