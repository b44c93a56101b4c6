package recording

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"whalemountain/backend"
)

// ErrNotFound is the answer for a recording that does not exist or is not the asker's to
// read: the two read the same.
var ErrNotFound = errors.New("no such recording")

// Ext is the extension of every recording.
const Ext = ".cast"

// Info is one recording as listed.
type Info struct {
	Owner string    `json:"owner"`
	Name  string    `json:"name"` // file name, NAME.cast
	Size  int64     `json:"size"`
	Time  time.Time `json:"time"` // last written
}

// Store is the recordings directory.
type Store struct {
	dir       string
	retention time.Duration
	maxSize   int64
	now       func() time.Time
}

// DefaultMaxSize bounds one recording, so that a shell printing without end cannot fill the
// data directory.
const DefaultMaxSize = 100 << 20

// SetMaxSize bounds each recording to n bytes (0: DefaultMaxSize); past it the recording
// ends with a marker saying so.
func (s *Store) SetMaxSize(n int64) {
	if n <= 0 {
		n = DefaultMaxSize
	}
	s.maxSize = n
}

// NewStore opens (creating, 0700) the recordings directory dir. Recordings older than
// retention are removed by Sweep; zero keeps them.
func NewStore(dir string, retention time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recordings directory %s: %w", dir, err)
	}
	return &Store{dir: dir, retention: retention, maxSize: DefaultMaxSize, now: time.Now}, nil
}

// validUser is a user name as it may name a directory: GitLab's characters, no dots alone.
var validUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)

// validName is a recording's file name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.cast$`)

// label makes a container name safe inside a file name.
func label(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "shell"
	}
	return b.String()
}

// Create starts a recording of owner's terminal, titled title, named after what (a container
// name).
func (s *Store) Create(owner, what, title string, width, height int, term string) (*Writer, Info, error) {
	if !validUser.MatchString(owner) {
		return nil, Info{}, fmt.Errorf("start a recording for %q: not a user name", owner)
	}
	dir := filepath.Join(s.dir, owner)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, Info{}, fmt.Errorf("start a recording for %s: %w", owner, err)
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	now := s.now().UTC()
	name := fmt.Sprintf("%s-%s-%s%s", now.Format("20060102T150405Z"), label(what), hex.EncodeToString(rnd[:]), Ext)
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, Info{}, fmt.Errorf("start a recording for %s: %w", owner, err)
	}
	h := Header{Width: width, Height: height, Title: title}
	if term != "" {
		h.Env = map[string]string{"TERM": term}
	}
	w, err := newWriter(f, h, s.now)
	if err == nil {
		w.max = s.maxSize
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, Info{}, fmt.Errorf("start a recording for %s: %w", owner, err)
	}
	return w, Info{Owner: owner, Name: name, Time: now}, nil
}

// readable reports whether id may read owner's recordings.
func readable(id backend.Identity, owner string) bool {
	return id.Valid() && (id.IsTA() || id.User == owner)
}

// List lists the recordings id may read: a student their own; a TA those of user, or every
// user's when user is empty. Newest first.
func (s *Store) List(id backend.Identity, user string) ([]Info, error) {
	if !id.Valid() {
		return nil, nil
	}
	var owners []string
	switch {
	case !id.IsTA():
		if user != "" && user != id.User {
			return nil, nil
		}
		owners = []string{id.User}
	case user != "":
		owners = []string{user}
	default:
		ents, err := os.ReadDir(s.dir)
		if err != nil {
			return nil, fmt.Errorf("list recordings: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && validUser.MatchString(e.Name()) {
				owners = append(owners, e.Name())
			}
		}
	}
	var out []Info
	for _, owner := range owners {
		if !validUser.MatchString(owner) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.dir, owner))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list recordings of %s: %w", owner, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !validName.MatchString(e.Name()) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			out = append(out, Info{Owner: owner, Name: e.Name(), Size: fi.Size(), Time: fi.ModTime()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Owner+"/"+out[i].Name < out[j].Owner+"/"+out[j].Name
	})
	return out, nil
}

// Open opens owner's recording name for reading, if id may read it. Anything else (another
// student's, a name that is no recording, a path) is ErrNotFound.
func (s *Store) Open(id backend.Identity, owner, name string) (*os.File, Info, error) {
	if !readable(id, owner) || !validUser.MatchString(owner) || !validName.MatchString(name) {
		return nil, Info{}, ErrNotFound
	}
	p := filepath.Join(s.dir, owner, name)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, Info{}, ErrNotFound
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscallNoFollow, 0)
	if err != nil {
		return nil, Info{}, ErrNotFound
	}
	return f, Info{Owner: owner, Name: name, Size: fi.Size(), Time: fi.ModTime()}, nil
}

// Sweep removes recordings last written longer ago than the retention, and returns how
// many it removed.
func (s *Store) Sweep() (int, error) {
	if s.retention <= 0 {
		return 0, nil
	}
	cutoff := s.now().Add(-s.retention)
	owners, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("sweep recordings: %w", err)
	}
	n := 0
	for _, o := range owners {
		if !o.IsDir() {
			continue
		}
		dir := filepath.Join(s.dir, o.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), Ext) {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.ModTime().Before(cutoff) {
				continue
			}
			if os.Remove(filepath.Join(dir, e.Name())) == nil {
				n++
			}
		}
	}
	return n, nil
}
