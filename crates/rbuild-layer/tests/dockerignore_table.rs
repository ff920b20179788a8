//! The `.dockerignore` table: what is excluded, case by case, with where each case comes from.
//!
//! Sources:
//! - `moby TestMatches`: moby/patternmatcher `patternmatcher_test.go`, `TestMatches` (`tests`,
//!   checked there with `MatchesOrParentMatches` and `MatchesUsingParentResults`, which agree).
//! - `moby multi`: the same test's `multiPatternTests`.
//! - `moby TestMatch`: `matchTests` in the same file (Go's `filepath.Match` cases), and
//!   `TestExclusionPattern*` / `TestPatternMatchesFolder*` / `TestWildcardMatches`.
//! - `docs`: the Dockerfile reference, ".dockerignore file" section (its examples).
//! - `DESIGN`: the rules in /work/shared/DESIGN.md "How BuildKit reads .dockerignore".
//! - `buildkit`: tonistiigi/fsutil's walk (`MatchesUsingParentResults` along the tree).

use rbuild_layer::IgnoreFile;

struct Case {
    src: &'static str,
    ignore: &'static str,
    path: &'static str,
    excluded: bool,
}

const fn c(src: &'static str, ignore: &'static str, path: &'static str, excluded: bool) -> Case {
    Case {
        src,
        ignore,
        path,
        excluded,
    }
}

const PROXY: &str = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- moby TestMatches ---
    c("moby TestMatches", "**", "file", true),
    c("moby TestMatches", "**", "file/", true),
    c("moby TestMatches", "**/", "file", true),
    c("moby TestMatches", "**/", "file/", true),
    c("moby TestMatches", "**", "/", true),
    c("moby TestMatches", "**/", "/", true),
    c("moby TestMatches", "**", "dir/file", true),
    c("moby TestMatches", "**/", "dir/file", true),
    c("moby TestMatches", "**", "dir/file/", true),
    c("moby TestMatches", "**/", "dir/file/", true),
    c("moby TestMatches", "**/**", "dir/file", true),
    c("moby TestMatches", "**/**", "dir/file/", true),
    c("moby TestMatches", "dir/**", "dir/file", true),
    c("moby TestMatches", "dir/**", "dir/file/", true),
    c("moby TestMatches", "dir/**", "dir/dir2/file", true),
    c("moby TestMatches", "dir/**", "dir/dir2/file/", true),
    c("moby TestMatches", "**/dir", "dir", true),
    c("moby TestMatches", "**/dir", "dir/file", true),
    c("moby TestMatches", "**/dir2/*", "dir/dir2/file", true),
    c("moby TestMatches", "**/dir2/*", "dir/dir2/file/", true),
    c("moby TestMatches", "**/dir2/**", "dir/dir2/dir3/file", true),
    c("moby TestMatches", "**/dir2/**", "dir/dir2/dir3/file/", true),
    c("moby TestMatches", "**file", "file", true),
    c("moby TestMatches", "**file", "dir/file", true),
    c("moby TestMatches", "**/file", "dir/file", true),
    c("moby TestMatches", "**file", "dir/dir/file", true),
    c("moby TestMatches", "**/file", "dir/dir/file", true),
    c("moby TestMatches", "**/file*", "dir/dir/file", true),
    c("moby TestMatches", "**/file*", "dir/dir/file.txt", true),
    c("moby TestMatches", "**/file*txt", "dir/dir/file.txt", true),
    c("moby TestMatches", "**/file*.txt", "dir/dir/file.txt", true),
    c("moby TestMatches", "**/file*.txt*", "dir/dir/file.txt", true),
    c("moby TestMatches", "**/**/*.txt", "dir/dir/file.txt", true),
    c("moby TestMatches", "**/**/*.txt2", "dir/dir/file.txt", false),
    c("moby TestMatches", "**/*.txt", "file.txt", true),
    c("moby TestMatches", "**/**/*.txt", "file.txt", true),
    c("moby TestMatches", "a**/*.txt", "a/file.txt", true),
    c("moby TestMatches", "a**/*.txt", "a/dir/file.txt", true),
    c("moby TestMatches", "a**/*.txt", "a/dir/dir/file.txt", true),
    c("moby TestMatches", "a/*.txt", "a/dir/file.txt", false),
    c("moby TestMatches", "a/*.txt", "a/file.txt", true),
    c("moby TestMatches", "a/*.txt**", "a/file.txt", true),
    c("moby TestMatches", "a[b-d]e", "ae", false),
    c("moby TestMatches", "a[b-d]e", "ace", true),
    c("moby TestMatches", "a[b-d]e", "aae", false),
    c("moby TestMatches", "a[^b-d]e", "aze", true),
    c("moby TestMatches", ".*", ".foo", true),
    c("moby TestMatches", ".*", "foo", false),
    c("moby TestMatches", "abc.def", "abcdef", false),
    c("moby TestMatches", "abc.def", "abc.def", true),
    c("moby TestMatches", "abc.def", "abcZdef", false),
    c("moby TestMatches", "abc?def", "abcZdef", true),
    c("moby TestMatches", "abc?def", "abcdef", false),
    c("moby TestMatches", "**/foo/bar", "foo/bar", true),
    c("moby TestMatches", "**/foo/bar", "dir/foo/bar", true),
    c("moby TestMatches", "**/foo/bar", "dir/dir2/foo/bar", true),
    c("moby TestMatches", "abc/**", "abc", false),
    c("moby TestMatches", "abc/**", "abc/def", true),
    c("moby TestMatches", "abc/**", "abc/def/ghi", true),
    c("moby TestMatches", "**/.foo", ".foo", true),
    c("moby TestMatches", "**/.foo", "bar.foo", false),
    c("moby TestMatches", "a(b)c/def", "a(b)c/def", true),
    c("moby TestMatches", "a(b)c/def", "a(b)c/xyz", false),
    c("moby TestMatches", "a.|)$(}+{bc", "a.|)$(}+{bc", true),
    c("moby TestMatches", PROXY, PROXY, true),
    c("moby TestMatches", "dist/*.whl", PROXY, true),
    c("moby TestMatches", "a\\\\", "a\\", true),
    c("moby TestMatches", "a\\*b", "a*b", true),
    // --- moby multi ---
    c("moby multi", "**\n!util/docker/web", "util/docker/web/foo", false),
    c("moby multi", "**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", true),
    c("moby multi", "**\n!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", PROXY, false),
    c("moby multi", "**\n!dist/*.whl", PROXY, false),
    // --- moby TestMatch (Go filepath.Match cases) and the exclusion tests ---
    c("moby TestMatch", "abc", "abc", true),
    c("moby TestMatch", "*", "abc", true),
    c("moby TestMatch", "*c", "abc", true),
    c("moby TestMatch", "a*", "a", true),
    c("moby TestMatch", "a*", "abc", true),
    c("moby TestMatch", "a*", "ab/c", true),
    c("moby TestMatch", "a*/b", "abc/b", true),
    c("moby TestMatch", "a*/b", "a/c/b", false),
    c("moby TestMatch", "a*b*c*d*e*/f", "axbxcxdxe/f", true),
    c("moby TestMatch", "a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
    c("moby TestMatch", "a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
    c("moby TestMatch", "a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
    c("moby TestMatch", "a*b?c*x", "abxbbxdbxebxczzx", true),
    c("moby TestMatch", "a*b?c*x", "abxbbxdbxebxczzy", false),
    c("moby TestMatch", "ab[c]", "abc", true),
    c("moby TestMatch", "ab[b-d]", "abc", true),
    c("moby TestMatch", "ab[e-g]", "abc", false),
    c("moby TestMatch", "ab[^c]", "abc", false),
    c("moby TestMatch", "ab[^b-d]", "abc", false),
    c("moby TestMatch", "ab[^e-g]", "abc", true),
    c("moby TestMatch", "a\\*b", "ab", false),
    c("moby TestMatch", "a?b", "a☺b", true),
    c("moby TestMatch", "a[^a]b", "a☺b", true),
    c("moby TestMatch", "a???b", "a☺b", false),
    c("moby TestMatch", "a[^a][^a][^a]b", "a☺b", false),
    c("moby TestMatch", "[a-ζ]*", "α", true),
    c("moby TestMatch", "*[a-ζ]", "A", false),
    c("moby TestMatch", "a?b", "a/b", false),
    c("moby TestMatch", "a*b", "a/b", false),
    c("moby TestMatch", "[\\]a]", "]", true),
    c("moby TestMatch", "[\\-]", "-", true),
    c("moby TestMatch", "[x\\-]", "x", true),
    c("moby TestMatch", "[x\\-]", "-", true),
    c("moby TestMatch", "[x\\-]", "z", false),
    c("moby TestMatch", "[\\-x]", "x", true),
    c("moby TestMatch", "[\\-x]", "-", true),
    c("moby TestMatch", "[\\-x]", "a", false),
    c("moby TestMatch", "*x", "xxx", true),
    c("moby TestWildcardMatches", "*", "fileutils.go", true),
    c("moby TestExclusionPatternMatchesPatternBefore", "!fileutils.go\n*.go", "fileutils.go", true),
    c("moby TestPatternMatchesFolderExclusions", "docs\n!docs/README.md", "docs/README.md", false),
    c("moby TestPatternMatchesFolderWithSlashExclusions", "docs/\n!docs/README.md", "docs/README.md", false),
    c("moby TestPatternMatchesFolderWildcardExclusions", "docs/*\n!docs/README.md", "docs/README.md", false),
    c("moby TestExclusionPatternMatchesPatternAfter", "*.go\n!fileutils.go", "fileutils.go", false),
    c("moby TestMatchesWithNoPatterns", "", "any/path/there", false),
    // --- docs ---
    c("docs", "# comment\n*/temp*", "somedir/temporary.txt", true),
    c("docs", "*/temp*", "temporary.txt", false),
    c("docs", "*/temp*", "somedir/temp/x.txt", true),
    c("docs", "*/*/temp*", "somedir/subdir/temporary.txt", true),
    c("docs", "*/*/temp*", "somedir/temporary.txt", false),
    c("docs", "temp?", "tempa", true),
    c("docs", "temp?", "temp", false),
    c("docs", "temp?", "tempab", false),
    c("docs", "**/*.go", "a/b/c.go", true),
    c("docs", "**/*.go", "c.go", true),
    c("docs", "*.md\n!README.md", "README.md", false),
    c("docs", "*.md\n!README.md", "CHANGES.md", true),
    c("docs", "*.md\n!README*.md\nREADME-secret.md", "README-secret.md", true),
    c("docs", "*.md\n!README*.md\nREADME-secret.md", "README-public.md", false),
    c("docs", "*.md\nREADME-secret.md\n!README*.md", "README-secret.md", false),
    c("docs", "/foo/bar", "foo/bar", true),
    c("docs", "foo/bar", "foo/bar", true),
    // --- DESIGN: reading the file ---
    c("DESIGN comment", "#a.txt", "#a.txt", false),
    c("DESIGN comment", " #a.txt", "#a.txt", true),
    c("DESIGN comment", "\\#a.txt", "#a.txt", true),
    c("DESIGN trim", "  a.txt \t", "a.txt", true),
    c("DESIGN crlf", "x\r\nb.txt\r\n", "b.txt", true),
    c("DESIGN bom", "\u{feff}a.txt", "a.txt", true),
    c("DESIGN ! trimmed", "*\n!   keep", "keep", false),
    c("DESIGN \\!", "\\!a", "!a", true),
    c("DESIGN \\!", "\\!a", "a", false),
    c("DESIGN clean ./", "./a", "a", true),
    c("DESIGN clean //", "a//b", "a/b", true),
    c("DESIGN clean ..", "x/../b", "b", true),
    c("DESIGN clean trailing /", "docs/", "docs", true),
    c("DESIGN clean leading /", "/docs", "docs/x", true),
    c("DESIGN clean ../x", "../x", "x", false),
    // --- DESIGN: matching ---
    c("DESIGN case-sensitive", "README.md", "readme.md", false),
    c("DESIGN anchored", "foo", "x/foo", false),
    c("DESIGN * no /", "*.pyc", "pkg/a.pyc", false),
    c("DESIGN ? is a character", "file?.txt", "fileé.txt", true),
    c("DESIGN ? is a character", "a??b", "aéb", false),
    c("DESIGN ? no /", "a?b", "a/b", false),
    c("DESIGN **/ zero dirs", "**/__pycache__", "__pycache__/x.pyc", true),
    c("DESIGN **/ many dirs", "**/__pycache__", "a/b/__pycache__/x.pyc", true),
    c("DESIGN trailing /**", "data/**", "data", false),
    c("DESIGN trailing /**", "data/**", "data/x/y", true),
    c("DESIGN ** alone", "**", "any/thing/at/all", true),
    c("DESIGN [^]", "[^a]*.py", "b.py", true),
    c("DESIGN [^]", "[^a]*.py", "a.py", false),
    c("DESIGN [!] literal", "[!a]x", "!x", true),
    c("DESIGN [!] literal", "[!a]x", "bx", false),
    c("DESIGN \\ escapes", "a\\*b", "axb", false),
    c("DESIGN \\ escapes", "a\\?b", "a?b", true),
    c("DESIGN literal .+()", "a+b(c).txt", "a+b(c).txt", true),
    c("DESIGN literal {}", "a{1,2}", "a{1,2}", true),
    c("DESIGN literal {}", "a{1,2}", "aa", false),
    c("DESIGN literal $", "$HOME", "$HOME", true),
    c("DESIGN literal |", "a|b", "a", false),
    c("DESIGN literal |", "a|b", "a|b", true),
    c("DESIGN last match wins", "*.txt\n!a.txt\n*.txt", "a.txt", true),
    c("DESIGN last match wins", "*.txt\n!a.txt", "a.txt", false),
    c("DESIGN ancestor", "docs", "docs/a/b.md", true),
    c("DESIGN re-include in excluded dir", "docs\n!docs/keep.md", "docs/keep.md", false),
    c("DESIGN re-include in excluded dir", "docs\n!docs/keep.md", "docs/other.md", true),
    c("DESIGN ordinary files", "*.py", ".dockerignore", false),
    c("DESIGN ordinary files", ".dockerignore\nDockerfile", ".dockerignore", true),
    c("DESIGN ordinary files", ".dockerignore\nDockerfile", "Dockerfile", true),
    c("DESIGN unicode", "ünï/*", "ünï/x", true),
    c("DESIGN python allowlist", "*\n!app\n!pyproject.toml", "app/main.py", false),
    c("DESIGN python allowlist", "*\n!app\n!pyproject.toml", "tests/test_main.py", true),
    c("DESIGN python allowlist", "*\n!app\n!pyproject.toml", "pyproject.toml", false),
    c("DESIGN python allowlist", "*\n!app\n!pyproject.toml", ".venv/bin/python", true),
    // --- buildkit: what the walk computes ---
    c("buildkit parent results", "a/x\n!a", "a/x", true),
    c("buildkit **file", "**file", "dir/afile", true),
    // --- Go regexp: escapes reach regexp.Compile as written ---
    c("Go regexp \\d", "file\\d.txt", "file1.txt", true),
    c("Go regexp \\d", "file\\d.txt", "filed.txt", false),
    c("Go regexp \\x41", "\\x41", "A", true),
];

#[test]
fn table() {
    assert!(CASES.len() >= 60);
    let mut failures = Vec::new();
    for case in CASES {
        let ig = IgnoreFile::parse(".dockerignore", case.ignore)
            .unwrap_or_else(|e| panic!("[{}] {:?}: {e}", case.src, case.ignore));
        let got = ig.matches(case.path);
        if got != case.excluded {
            failures.push(format!(
                "[{}] patterns {:?} path {:?}: expected excluded={}, got {}",
                case.src, case.ignore, case.path, case.excluded, got
            ));
        }
        // moby asserts that MatchesOrParentMatches agrees with the parent-results walk on its
        // cases; they differ only where BuildKit's walk skips a pattern at a parent.
        if case.src != "buildkit parent results" && ig.matches_or_parent_matches(case.path) != got {
            failures.push(format!(
                "[{}] {:?} {:?}: MatchesOrParentMatches disagrees",
                case.src, case.ignore, case.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn walk_semantics_differ_from_matches_or_parent_matches_where_buildkit_does() {
    let ig = IgnoreFile::parse("x", "a/x\n!a").unwrap();
    assert!(
        ig.matches("a/x"),
        "BuildKit excludes a/x: `!a` was skipped at a/ since nothing was excluded there"
    );
    assert!(!ig.matches_or_parent_matches("a/x"));
}

/// Malformed patterns: an error naming the file and the line.
#[test]
fn errors_name_the_line() {
    for (src, text, line, needle) in [
        ("moby TestMatch", "[", 1, "unclosed character class"),
        (
            "DESIGN unclosed [",
            "ok\n\n[abc",
            3,
            "unclosed character class",
        ),
        ("moby TestMatch", "[^", 1, "unclosed"),
        ("moby TestMatch", "[^bc", 1, "unclosed"),
        ("moby TestMatch", "a[", 1, "unclosed"),
        ("moby TestMatch", "[]a]", 1, "malformed character class"),
        ("moby TestMatch", "[-]", 1, "malformed character class"),
        ("moby TestMatch", "[x-]", 1, "malformed character class"),
        ("moby TestMatch", "[-x]", 1, "malformed character class"),
        ("moby TestMatch", "[a-b-c]", 1, "malformed character class"),
        ("moby TestMatch", "\\", 1, "trailing backslash"),
        (
            "moby TestSingleExclamationError",
            "a\n!",
            2,
            "illegal exclusion pattern",
        ),
        (
            "ignorefile TestReadAll",
            "! ",
            1,
            "illegal exclusion pattern",
        ),
        ("Go regexp", "x\n[z-a]", 2, "invalid character class range"),
        ("Go regexp", "\\q", 1, "invalid escape"),
        (
            "moby #52203",
            "[Local-Only]/",
            1,
            "invalid character class range",
        ),
    ] {
        let e = IgnoreFile::parse(".dockerignore", text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(".dockerignore:{line}: ")),
            "[{src}] {text:?}: {e}"
        );
        assert!(e.contains(needle), "[{src}] {text:?}: {e}");
    }
}

#[test]
fn exceptions_flag_and_cleaned_patterns() {
    // moby TestCleanPatterns*, TestCleanPatternsExceptionFlag, ...LeadingSpaceTrimmed.
    let ig = IgnoreFile::parse("x", "docs\nconfig\n\n  !docs/README.md  \n").unwrap();
    let pats: Vec<_> = ig
        .patterns()
        .iter()
        .map(|p| (p.as_str(), p.is_exception(), p.line()))
        .collect();
    assert_eq!(
        pats,
        [
            ("docs", false, 1),
            ("config", false, 2),
            ("docs/README.md", true, 4)
        ]
    );
    assert!(ig.has_exceptions());
    assert!(!IgnoreFile::parse("x", "docs").unwrap().has_exceptions());
}

#[test]
fn when_to_enter_an_excluded_directory() {
    // Only plain exceptions: enter only directories that lie above one.
    let ig = IgnoreFile::parse("x", "*\n!app/src\n!pyproject.toml").unwrap();
    assert!(ig.must_enter_excluded_dir("app"));
    assert!(!ig.must_enter_excluded_dir("tests"));
    assert!(
        !ig.must_enter_excluded_dir("ap"),
        "prefix match is per path component"
    );
    // A trailing /* or /** does not count as a wildcard.
    let ig = IgnoreFile::parse("x", "data\n!data/keep/**").unwrap();
    assert!(ig.must_enter_excluded_dir("data"));
    assert!(!ig.must_enter_excluded_dir("other"));
    // Any wildcard exception: every excluded directory is entered.
    let ig = IgnoreFile::parse("x", "node_modules\n!**/package.json").unwrap();
    assert!(ig.must_enter_excluded_dir("node_modules"));
    // No exception at all: never.
    let ig = IgnoreFile::parse("x", "node_modules").unwrap();
    assert!(!ig.must_enter_excluded_dir("node_modules"));
}

#[test]
fn load_prefers_containerignore() {
    let dir = tempfile::tempdir().unwrap();
    assert!(IgnoreFile::load(dir.path()).unwrap().is_none());
    std::fs::write(dir.path().join(".dockerignore"), "a\n").unwrap();
    let (p, ig) = IgnoreFile::load(dir.path()).unwrap().unwrap();
    assert!(p.ends_with(".dockerignore"));
    assert!(ig.matches("a"));
    std::fs::write(dir.path().join(".containerignore"), "b\n").unwrap();
    let (p, ig) = IgnoreFile::load(dir.path()).unwrap().unwrap();
    assert!(p.ends_with(".containerignore"));
    assert!(ig.matches("b") && !ig.matches("a"));
    std::fs::write(dir.path().join(".containerignore"), b"ok\n\xff\n").unwrap();
    let e = IgnoreFile::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(".containerignore:2:") && e.contains("UTF-8"),
        "{e}"
    );
}
