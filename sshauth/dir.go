package sshauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// maxKeysFile bounds how much of a keys file is read.
const maxKeysFile = 1 << 20

// DirSource reads keys from <dir>/<user>.keys, one authorized_keys file per user. Files
// are read on every lookup, so a file added, changed or removed takes effect at the next
// login without a restart. Comments, blank lines and option prefixes ("restrict,...
// ssh-ed25519 AAAA...") are accepted; the options themselves are not enforced. The
// Authenticator asks with the user name in lower case, so name the files in lower case.
//
// A keys file, or the directory, that users other than its owner can write is refused
// (logged, and treated as holding no keys): whoever can write it could log in as anyone.
type DirSource struct {
	dir string
	log *slog.Logger
}

// NewDirSource returns a source reading dir. A nil logger discards.
func NewDirSource(dir string, logger *slog.Logger) *DirSource {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DirSource{dir: dir, log: logger.With("source", "keys-dir", "dir", dir)}
}

// Name is "keys-dir".
func (d *DirSource) Name() string { return "keys-dir" }

// Keys returns the keys in <dir>/<user>.keys. No such file (or an invalid user name, or an
// unusable directory) is ErrUnknownUser.
func (d *DirSource) Keys(_ context.Context, user string) ([]ssh.PublicKey, error) {
	if !ValidUsername(user) {
		return nil, fmt.Errorf("keys-dir: user %q: %w", user, ErrUnknownUser)
	}
	dirInfo, err := os.Stat(d.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.log.Error("cannot read keys directory", "err", err)
		}
		return nil, fmt.Errorf("keys-dir: user %q: %w", user, ErrUnknownUser)
	}
	if !dirInfo.IsDir() || dirInfo.Mode().Perm()&0o022 != 0 {
		d.log.Error("refusing keys directory: not a directory, or writable by group or others", "mode", dirInfo.Mode().String())
		return nil, fmt.Errorf("keys-dir: user %q: %w", user, ErrUnknownUser)
	}

	path := filepath.Join(d.dir, user+".keys")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys-dir: user %q: %w", user, ErrUnknownUser)
	}
	log := d.log.With("user", user, "file", path)
	if err != nil {
		log.Error("cannot open keys file", "err", err)
		return nil, nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		log.Error("cannot stat keys file", "err", err)
		return nil, nil
	}
	if !info.Mode().IsRegular() {
		log.Error("refusing keys file: not a regular file", "mode", info.Mode().String())
		return nil, nil
	}
	if info.Mode().Perm()&0o022 != 0 {
		log.Error("refusing keys file: writable by group or others", "mode", info.Mode().String())
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeysFile+1))
	if err != nil {
		log.Error("cannot read keys file", "err", err)
		return nil, nil
	}
	if len(data) > maxKeysFile {
		log.Error("refusing keys file: larger than 1 MiB")
		return nil, nil
	}
	return parseAuthorizedKeys(data, log), nil
}

// parseAuthorizedKeys returns the keys in authorized_keys text, logging lines that are not
// keys (blank lines and # comments are skipped silently).
func parseAuthorizedKeys(data []byte, log *slog.Logger) []ssh.PublicKey {
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxKeysFile)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			log.Warn("skipping unparsable line in keys file", "line", n, "err", err)
			continue
		}
		keys = append(keys, k)
	}
	return keys
}
