//! rpm metadata: repomd.xml and the primary package list, and the rpm subset
//! built from them.
//!
//! A subset keeps `repodata/repomd.xml` (with `.asc` and `.key` when
//! present) and every file repomd.xml lists: they are small next to the
//! packages, byte-identical across nodes, and which of them dnf fetches
//! (filelists, updateinfo, comps, modules…) depends on its version and
//! configuration. Packages are chosen from primary by name glob and
//! architecture; `noarch` packages always come along, because every
//! architecture installs them and a subset that dropped them would leave
//! dnf unable to resolve most dependencies.
//!
//! primary.xml of a large distribution is hundreds of MB decompressed, so it
//! is read as a stream of quick-xml events through [`crate::decompress`];
//! [`crate::limits::MAX_XML_EVENT`] bounds what one event can make the
//! reader buffer.

use std::collections::BTreeSet;

use quick_xml::events::{BytesStart, Event};

use crate::Error;
use crate::decompress::{self, Stream};
use crate::glob::Patterns;
use crate::limits::{MAX_FIELD, MAX_INDEX_FILE, MAX_PACKAGES, MAX_XML_EVENT};

/// `<data>` elements in one repomd.xml (Fedora has about 20).
const MAX_REPOMD_DATA: usize = 10_000;
use crate::plan::{Selection, Tree, valid_relative};

/// One `<data>` element of repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepomdData {
    /// The `type` attribute: `primary`, `filelists`, `other`, …
    pub kind: String,
    /// `<location href>`, relative to the repository root (the parent of
    /// `repodata/`).
    pub href: String,
    /// `<location xml:base>`, when the file lives elsewhere.
    pub base: Option<String>,
}

/// The parts of repomd.xml a subset needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repomd {
    /// The metadata files, in document order.
    pub data: Vec<RepomdData>,
}

impl Repomd {
    /// The primary package list (`type="primary"`, the XML one).
    pub fn primary(&self) -> Option<&RepomdData> {
        self.data.iter().find(|d| d.kind == "primary")
    }
}

/// One `<package>` of primary.xml, the fields a subset needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrimaryPackage {
    /// `<name>`.
    pub name: String,
    /// `<arch>`.
    pub arch: String,
    /// `<location href>`.
    pub href: String,
    /// `<location xml:base>`, when the package lives elsewhere.
    pub base: Option<String>,
    /// `<size package>`.
    pub size: Option<u64>,
}

/// An XML event stream over a (possibly compressed) file, with errors that
/// name the file and the offset.
struct Xml<'a> {
    path: String,
    reader: quick_xml::Reader<Stream<'a>>,
    buf: Vec<u8>,
}

/// The owned parts of one event the parsers look at.
enum Ev {
    Start(String, Attrs),
    Empty(String, Attrs),
    End,
    Text(String),
    Eof,
}

/// The attributes a parser asked for, by local name.
type Attrs = Vec<(String, String)>;

fn attr<'v>(attrs: &'v Attrs, name: &str) -> Option<&'v str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl<'a> Xml<'a> {
    fn open(path: &str, data: &'a [u8]) -> Result<Self, Error> {
        let stream = decompress::open(path, data, MAX_XML_EVENT)?;
        Ok(Xml {
            path: path.to_string(),
            reader: quick_xml::Reader::from_reader(stream),
            buf: Vec::new(),
        })
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Xml {
            path: self.path.clone(),
            offset: self.reader.get_ref().position(),
            reason: reason.into(),
        }
    }

    fn attrs(&self, e: &BytesStart<'_>, wanted: &[&str]) -> Result<Attrs, Error> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| self.error(format!("bad attribute: {err}")))?;
            let local = a.key.local_name();
            let key: &str = local.as_ref();
            if let Some(w) = wanted.iter().find(|w| **w == key) {
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|err| self.error(format!("attribute {key}: {err}")))?;
                if v.len() > MAX_FIELD {
                    return Err(
                        self.error(format!("attribute {key} longer than {MAX_FIELD} bytes"))
                    );
                }
                out.push((w.to_string(), v.into_owned()));
            }
        }
        Ok(out)
    }

    /// The next event; `wanted` are the attribute names to keep, and text
    /// is converted only with `keep_text`.
    fn next(&mut self, wanted: &[&str], keep_text: bool) -> Result<Ev, Error> {
        self.reader.get_mut().mark();
        self.buf.clear();
        let ev = match self.reader.read_event_into(&mut self.buf) {
            Ok(ev) => ev.into_owned(),
            Err(quick_xml::Error::Io(e)) => {
                return Err(decompress::error(&self.path, self.reader.get_ref(), &e));
            }
            Err(e) => return Err(self.error(e.to_string())),
        };
        Ok(match ev {
            Event::Start(e) => Ev::Start(local(&e), self.attrs(&e, wanted)?),
            Event::Empty(e) => Ev::Empty(local(&e), self.attrs(&e, wanted)?),
            Event::End(_) => Ev::End,
            Event::Text(t) if keep_text => Ev::Text(t.xml10_content().into_owned()),
            Event::CData(t) if keep_text => Ev::Text(t.xml10_content().into_owned()),
            Event::GeneralRef(r) if keep_text => {
                let entity = format!("&{};", &*r);
                match quick_xml::escape::unescape(&entity) {
                    Ok(s) => Ev::Text(s.into_owned()),
                    Err(e) => return Err(self.error(format!("entity {entity}: {e}"))),
                }
            }
            Event::Eof => Ev::Eof,
            Event::Text(_)
            | Event::CData(_)
            | Event::GeneralRef(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => Ev::Text(String::new()),
        })
    }
}

fn local(e: &BytesStart<'_>) -> String {
    let name = e.local_name();
    let s: &str = name.as_ref();
    s.to_string()
}

/// Appends `text` to a captured field, refusing overlong ones.
fn push_field(x: &Xml, field: &mut String, text: &str) -> Result<(), Error> {
    if field.len() + text.len() > MAX_FIELD {
        return Err(x.error(format!("text longer than {MAX_FIELD} bytes")));
    }
    field.push_str(text);
    Ok(())
}

/// Parses repomd.xml (plain, or compressed).
pub fn parse_repomd(path: &str, data: &[u8]) -> Result<Repomd, Error> {
    if data.len() > MAX_INDEX_FILE {
        return Err(Error::TooLarge {
            path: path.to_string(),
            limit: MAX_INDEX_FILE as u64,
        });
    }
    /// The open `<data>`: its children are at `depth`.
    struct Open {
        depth: usize,
        kind: String,
        location: Option<(String, Option<String>)>,
    }
    let mut x = Xml::open(path, data)?;
    let mut out = Repomd::default();
    let mut depth = 0usize;
    let mut root = false;
    let mut current: Option<Open> = None;
    loop {
        let (name, attrs, empty) = match x.next(&["type", "href", "base"], false)? {
            Ev::Eof => break,
            Ev::Text(_) => continue,
            Ev::End => {
                if let Some(open) = current.take_if(|o| o.depth == depth) {
                    let Some((href, base)) = open.location else {
                        return Err(x.error(format!(
                            "<data type=\"{}\"> without <location href>",
                            open.kind
                        )));
                    };
                    out.data.push(RepomdData {
                        kind: open.kind,
                        href,
                        base,
                    });
                    if out.data.len() > MAX_REPOMD_DATA {
                        return Err(Error::TooMany {
                            path: path.to_string(),
                            what: "<data> elements",
                            limit: MAX_REPOMD_DATA as u64,
                        });
                    }
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            Ev::Start(n, a) => (n, a, false),
            Ev::Empty(n, a) => (n, a, true),
        };
        if depth == 0 {
            if name != "repomd" {
                return Err(x.error(format!("root element is <{name}>, not <repomd>")));
            }
            root = true;
        } else if depth == 1 && name == "data" && !empty {
            let kind = attr(&attrs, "type")
                .ok_or_else(|| x.error("<data> without a type"))?
                .to_string();
            current = Some(Open {
                depth: depth + 1,
                kind,
                location: None,
            });
        } else if name == "location"
            && let Some(open) = &mut current
            && depth == open.depth
        {
            let href = attr(&attrs, "href").ok_or_else(|| x.error("<location> without href"))?;
            open.location = Some((href.to_string(), attr(&attrs, "base").map(str::to_string)));
        }
        if !empty {
            depth += 1;
        }
    }
    if !root {
        return Err(x.error("no <repomd> element"));
    }
    Ok(out)
}

/// Reads primary.xml (plain, gz, xz or zst), calling `f` on each package;
/// returns how many there were.
pub fn parse_primary(
    path: &str,
    data: &[u8],
    mut f: impl FnMut(PrimaryPackage) -> Result<(), Error>,
) -> Result<u64, Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Field {
        Name,
        Arch,
    }
    let mut x = Xml::open(path, data)?;
    let mut depth = 0usize;
    let mut root = false;
    let mut count = 0u64;
    // The open <package> (its children are at depth pkg_depth + 1).
    let mut pkg: Option<(usize, PrimaryPackage, bool)> = None;
    let mut capture: Option<Field> = None;
    loop {
        let (name, attrs, empty) = match x.next(&["href", "base", "package"], capture.is_some())? {
            Ev::Eof => break,
            Ev::Text(t) => {
                if let (Some(field), Some((_, p, _))) = (capture, &mut pkg) {
                    let target = match field {
                        Field::Name => &mut p.name,
                        Field::Arch => &mut p.arch,
                    };
                    push_field(&x, target, &t)?;
                }
                continue;
            }
            Ev::End => {
                depth = depth.saturating_sub(1);
                capture = None;
                if let Some((d, _, _)) = &pkg
                    && *d == depth
                    && let Some((_, p, located)) = pkg.take()
                {
                    if p.name.trim().is_empty() || p.arch.trim().is_empty() || !located {
                        return Err(x.error(format!(
                            "<package> {:?} without a name, arch or location",
                            p.name
                        )));
                    }
                    count += 1;
                    if count > MAX_PACKAGES {
                        return Err(Error::TooMany {
                            path: path.to_string(),
                            what: "packages",
                            limit: MAX_PACKAGES,
                        });
                    }
                    f(PrimaryPackage {
                        name: p.name.trim().to_string(),
                        arch: p.arch.trim().to_string(),
                        ..p
                    })?;
                }
                continue;
            }
            Ev::Start(n, a) => (n, a, false),
            Ev::Empty(n, a) => (n, a, true),
        };
        capture = None;
        if depth == 0 {
            if name != "metadata" {
                return Err(x.error(format!("root element is <{name}>, not <metadata>")));
            }
            root = true;
        } else if depth == 1 && name == "package" {
            if !empty {
                pkg = Some((depth, PrimaryPackage::default(), false));
            } else {
                return Err(x.error("empty <package/>"));
            }
        } else if let Some((d, p, located)) = &mut pkg
            && depth == *d + 1
        {
            match name.as_str() {
                "name" if !empty => capture = Some(Field::Name),
                "arch" if !empty => capture = Some(Field::Arch),
                "location" => {
                    let href =
                        attr(&attrs, "href").ok_or_else(|| x.error("<location> without href"))?;
                    p.href = href.to_string();
                    p.base = attr(&attrs, "base").map(str::to_string);
                    *located = true;
                }
                "size" => {
                    if let Some(s) = attr(&attrs, "package") {
                        p.size = Some(s.trim().parse().map_err(|_| {
                            x.error(format!("<size package={s:?}> is not a number"))
                        })?);
                    }
                }
                _ => {}
            }
        }
        if !empty {
            depth += 1;
        }
    }
    if !root {
        return Err(x.error("no <metadata> element"));
    }
    if pkg.is_some() || depth != 0 {
        return Err(x.error("document ends inside an element"));
    }
    Ok(count)
}

/// The repository roots of the tree: "" or a prefix ending with '/', under
/// which `repodata/repomd.xml` exists.
fn roots(tree: &Tree) -> BTreeSet<String> {
    tree.paths()
        .filter_map(|p| p.strip_suffix("repodata/repomd.xml"))
        .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))
        .map(str::to_string)
        .collect()
}

/// Step 1 of an rpm subset: repomd.xml (+ .asc, .key) and the primary
/// files beside it (their names hold `primary.xml`, whatever the checksum
/// prefix and compression).
pub(crate) fn metadata_paths(tree: &Tree) -> BTreeSet<String> {
    let roots = roots(tree);
    let mut out = BTreeSet::new();
    for root in &roots {
        for ext in ["", ".asc", ".key"] {
            tree.keep(&mut out, format!("{root}repodata/repomd.xml{ext}"));
        }
    }
    for p in tree.paths() {
        let Some((dir, name)) = p.rsplit_once('/') else {
            continue;
        };
        let Some(prefix) = dir.strip_suffix("repodata") else {
            continue;
        };
        if name.contains("primary.xml") && roots.contains(prefix) {
            out.insert(p.to_string());
        }
    }
    out
}

/// Step 2 of an rpm subset.
pub(crate) fn plan(
    architectures: &[String],
    packages: &Patterns,
    tree: &Tree,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>,
    sel: &mut Selection,
) -> Result<(), Error> {
    let roots = roots(tree);
    if roots.is_empty() {
        return Err(Error::Subset(
            "kind = \"rpm\", but the snapshot has no repodata/repomd.xml".into(),
        ));
    }
    let mut seen_arches = BTreeSet::new();
    for root in &roots {
        let repomd_path = format!("{root}repodata/repomd.xml");
        let repomd = parse_repomd(&repomd_path, &read(&repomd_path)?)?;
        for ext in ["", ".asc", ".key"] {
            sel.metadata(tree, format!("{repomd_path}{ext}"));
        }
        for d in &repomd.data {
            if !valid_relative(&d.href) {
                return Err(Error::Repository {
                    path: repomd_path.clone(),
                    reason: format!("{}: href {:?} is not a relative path", d.kind, d.href),
                });
            }
            if d.base.is_some() || !sel.metadata(tree, format!("{root}{}", d.href)) {
                sel.missing += 1;
            }
        }
        let primary = repomd.primary().ok_or_else(|| Error::Repository {
            path: repomd_path.clone(),
            reason: "no <data type=\"primary\">".into(),
        })?;
        let primary_path = format!("{root}{}", primary.href);
        if primary.base.is_some() || !tree.has(&primary_path) {
            return Err(Error::Repository {
                path: repomd_path.clone(),
                reason: format!("names {} but the snapshot does not have it", primary.href),
            });
        }
        let data = read(&primary_path)?;
        parse_primary(&primary_path, &data, |p| {
            if seen_arches.len() < 1000 {
                seen_arches.insert(p.arch.clone());
            }
            let arch_ok = p.arch == "noarch" || architectures.contains(&p.arch);
            if !arch_ok || !packages.matches(&p.name) {
                return Ok(());
            }
            if p.base.is_some() {
                sel.missing += 1;
                return Ok(());
            }
            if !valid_relative(&p.href) {
                return Err(Error::Repository {
                    path: primary_path.clone(),
                    reason: format!(
                        "package {}: href {:?} is not a relative path",
                        p.name, p.href
                    ),
                });
            }
            sel.package(tree, format!("{root}{}", p.href));
            Ok(())
        })?;
    }
    for a in architectures {
        if !seen_arches.is_empty() && !seen_arches.contains(a) {
            return Err(Error::Subset(format!(
                "architecture {a:?} is in no package of the repositories (they have: {})",
                seen_arches.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="sha256">aa</checksum>
    <location href="repodata/aa-primary.xml.zst"/>
    <size>123</size>
  </data>
  <data type="filelists">
    <location href="repodata/bb-filelists.xml.zst"/>
  </data>
  <data type="primary_db"><location xml:base="http://elsewhere/" href="repodata/cc-primary.sqlite.bz2"/></data>
</repomd>
"#;

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="3">
<package type="rpm">
  <name>hello</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="1.0" rel="1"/>
  <summary>A &amp; B</summary>
  <size package="2048" installed="100" archive="300"/>
  <location href="Packages/h/hello-1.0-1.x86_64.rpm"/>
  <format><rpm:provides><rpm:entry name="hello" flags="EQ"/></rpm:provides><file>/usr/bin/name</file></format>
</package>
<package type="rpm"><name>c&amp;d</name><arch>noarch</arch><location href="c.rpm"/></package>
<package type="rpm"><name><![CDATA[e]]></name><arch>src</arch><location xml:base="http://x/" href="e.src.rpm"/></package>
</metadata>
"#;

    fn primary(text: &str) -> Result<Vec<PrimaryPackage>, Error> {
        let mut v = Vec::new();
        parse_primary("primary.xml", text.as_bytes(), |p| {
            v.push(p);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn repomd_data_files() {
        let r = parse_repomd("repodata/repomd.xml", REPOMD.as_bytes()).expect("parses");
        assert_eq!(r.data.len(), 3);
        let p = r.primary().expect("primary");
        assert_eq!(p.href, "repodata/aa-primary.xml.zst");
        assert_eq!(r.data[1].kind, "filelists");
        assert_eq!(r.data[2].base.as_deref(), Some("http://elsewhere/"));
    }

    #[test]
    fn primary_packages() {
        let v = primary(PRIMARY).expect("parses");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name, "hello");
        assert_eq!(v[0].arch, "x86_64");
        assert_eq!(v[0].href, "Packages/h/hello-1.0-1.x86_64.rpm");
        assert_eq!(v[0].size, Some(2048));
        assert_eq!(v[1].name, "c&d");
        assert_eq!(v[1].arch, "noarch");
        assert_eq!(v[2].name, "e");
        assert_eq!(v[2].base.as_deref(), Some("http://x/"));
    }

    #[test]
    fn primary_errors_name_the_file() {
        for (bad, what) in [
            (
                "<metadata><package><name>a</name></package></metadata>",
                "without",
            ),
            ("<metadata><package><name>a</name>", "ends inside"),
            ("<other/>", "root element"),
            ("", "no <metadata>"),
            ("<metadata><package><name>a</arch></package></metadata>", ""),
            (
                "<metadata><package><name>a</name><arch>x</arch><location/></package></metadata>",
                "without href",
            ),
            (
                "<metadata><package><name>a</name><arch>x</arch><size package=\"x\"/><location href=\"a\"/></package></metadata>",
                "not a number",
            ),
        ] {
            let e = primary(bad).expect_err(bad);
            assert!(
                e.to_string().starts_with("primary.xml: at byte"),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(what), "{bad}: {e}");
        }
        let long = format!(
            "<metadata><package><name>{}</name></package></metadata>",
            "a".repeat(MAX_FIELD + 1)
        );
        assert!(primary(&long).is_err());
    }

    #[test]
    fn one_event_cannot_grow_without_bound() {
        let mut doc = String::from("<metadata><package><description>");
        doc.push_str(&"x".repeat(MAX_XML_EVENT as usize + 10));
        doc.push_str("</description></package></metadata>");
        let e = primary(&doc).expect_err("too long");
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    fn synthetic() -> (
        Vec<crate::TreeFile>,
        std::collections::HashMap<String, Vec<u8>>,
    ) {
        let repomd = r#"<repomd><data type="primary"><location href="repodata/p-primary.xml"/></data>
<data type="other"><location href="repodata/o-other.xml.gz"/></data></repomd>"#;
        let primary = r#"<metadata>
<package><name>a</name><arch>x86_64</arch><location href="Packages/a.rpm"/></package>
<package><name>a</name><arch>aarch64</arch><location href="Packages/a.aarch64.rpm"/></package>
<package><name>n</name><arch>noarch</arch><location href="Packages/n.rpm"/></package>
<package><name>far</name><arch>noarch</arch><location xml:base="http://x/" href="far.rpm"/></package>
</metadata>"#;
        let mut data = std::collections::HashMap::new();
        for prefix in ["fedora/41/x86_64/os/", "extras/"] {
            data.insert(
                format!("{prefix}repodata/repomd.xml"),
                repomd.as_bytes().to_vec(),
            );
            data.insert(format!("{prefix}repodata/repomd.xml.asc"), b"sig".to_vec());
            data.insert(
                format!("{prefix}repodata/p-primary.xml"),
                primary.as_bytes().to_vec(),
            );
            data.insert(format!("{prefix}repodata/o-other.xml.gz"), b"x".to_vec());
            data.insert(
                format!("{prefix}repodata/stale-primary.xml.gz"),
                b"x".to_vec(),
            );
            for f in ["a.rpm", "a.aarch64.rpm", "n.rpm"] {
                data.insert(format!("{prefix}Packages/{f}"), b"rpm".to_vec());
            }
        }
        let files = data
            .iter()
            .map(|(p, d)| crate::TreeFile {
                path: p.clone(),
                size: d.len() as u64,
            })
            .collect();
        (files, data)
    }

    #[test]
    fn several_repositories_signatures_and_elsewhere_packages() {
        let (files, data) = synthetic();
        let subset = crate::Subset::Rpm {
            architectures: vec!["x86_64".into()],
            packages: vec!["*".into()],
        };
        let meta = crate::metadata_paths(&subset, &files);
        // repomd.xml, .asc and both primary-named files, in each repository.
        assert_eq!(meta.len(), 8, "{meta:#?}");
        let mut read = |p: &str| data.get(p).cloned().ok_or_else(|| Error::read(p, "absent"));
        let plan = crate::plan(&subset, &files, &mut read).expect("plan");
        for prefix in ["fedora/41/x86_64/os/", "extras/"] {
            for f in [
                "repodata/repomd.xml",
                "repodata/repomd.xml.asc",
                "repodata/p-primary.xml",
                "repodata/o-other.xml.gz",
                "Packages/a.rpm",
                "Packages/n.rpm",
            ] {
                assert!(
                    plan.selected.contains(&format!("{prefix}{f}")),
                    "{prefix}{f}"
                );
            }
            // Not listed by repomd.xml, or another architecture.
            assert!(
                !plan
                    .selected
                    .contains(&format!("{prefix}repodata/stale-primary.xml.gz"))
            );
            assert!(
                !plan
                    .selected
                    .contains(&format!("{prefix}Packages/a.aarch64.rpm"))
            );
        }
        assert_eq!((plan.metadata, plan.packages, plan.missing), (8, 4, 2));
    }
}
