package runner

import (
	"slices"
	"testing"
	"time"
)

func TestLastContact(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, log string
		want      time.Time
		ok        bool
	}{
		{"go log prefix", "2026/12/02 08:20:00 Checking for jobs... received job=1\n2026/12/02 08:30:00 Appending trace to coordinator... ok\n", at, true},
		{"docker timestamps", "2026-12-02T08:30:00Z Checking for jobs... received job=7 runner=abc\n", at, true},
		{"logrus time", `time="2026-12-02T08:30:00Z" level=info msg="Checking for jobs... received" job=7` + "\n", at, true},
		{"last contact line wins over later noise", "2026/12/02 08:30:00 Checking for jobs... received job=1\n2026/12/02 09:00:00 Configuration loaded\n", at, true},
		{"no contact words", "2026/12/02 08:30:00 Runtime platform arch=amd64\n", time.Time{}, false},
		{"contact words without a time", "Checking for jobs... received job=1\n", time.Time{}, false},
		{"failed check is no contact", "2026/12/02 08:30:00 WARNING: Checking for jobs... failed: dial tcp\n", time.Time{}, false},
		{"empty", "", time.Time{}, false},
	} {
		got, ok := LastContact(tc.log)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: LastContact = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMergeJobs(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 12, 2, 8, m, 0, 0, time.UTC) }
	names := func(js []Job) []string {
		var n []string
		for _, j := range js {
			n = append(n, j.Name+":"+j.State)
		}
		return n
	}
	var old []Job
	for i := range 6 {
		old = append(old, Job{Name: "j" + string(rune('a'+i)), State: "exited", Created: at(i)})
	}
	for _, tc := range []struct {
		name        string
		known, seen []Job
		want        []string
	}{
		{"nothing", nil, nil, []string{}},
		{"newest first", nil, []Job{{Name: "a", State: "exited", Created: at(1)}, {Name: "b", State: "running", Created: at(2)}},
			[]string{"b:running", "a:exited"}},
		{"seen now replaces known", []Job{{Name: "a", State: "running", Created: at(1)}}, []Job{{Name: "a", State: "exited", Created: at(1)}},
			[]string{"a:exited"}},
		{"at most five finished, running kept", old, []Job{{Name: "r", State: "running", Created: at(0)}},
			[]string{"jf:exited", "je:exited", "jd:exited", "jc:exited", "jb:exited", "r:running"}},
	} {
		got := names(mergeJobs(tc.known, tc.seen))
		if got == nil {
			got = []string{}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOnlineAndContactWords(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		r               Runner
		online, contact string
	}{
		{Runner{}, "?", "?"},
		{Runner{Online: NeverContacted}, "never", "never"},
		{Runner{Online: Online, LastContact: now.Add(-12 * time.Second)}, "online", "12s ago"},
		{Runner{Online: Online, LastContact: now.Add(-5*time.Minute - 3*time.Second)}, "online", "5m ago"},
		{Runner{Online: Offline, LastContact: now.Add(-3 * time.Hour)}, "offline", "3h ago"},
		{Runner{Online: "stale", LastContact: now.Add(-100 * time.Hour)}, "stale", "4d ago"},
		{Runner{Online: Online, LastContact: now.Add(time.Second)}, "online", "0s ago"},
	} {
		if got := OnlineWord(tc.r); got != tc.online {
			t.Errorf("OnlineWord(%+v) = %q, want %q", tc.r, got, tc.online)
		}
		if got := ContactWord(tc.r, now); got != tc.contact {
			t.Errorf("ContactWord(%+v) = %q, want %q", tc.r, got, tc.contact)
		}
	}
}
