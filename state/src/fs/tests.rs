use super::*;

fn tree(name: &str) -> CrashFs {
    let root = std::env::temp_dir().join(format!("weir-crashfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("old"), "old bytes").unwrap();
    CrashFs::new(root).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn write(fs: &CrashFs, path: &Path, bytes: &str, sync: bool) {
    use std::io::Write;
    let mut file = fs.create(path).unwrap();
    file.write_all(bytes.as_bytes()).unwrap();
    if sync {
        fs.sync_file(path, &file).unwrap();
    }
}

#[test]
fn what_existed_before_survives_and_unsynced_names_do_not() {
    let fs = tree("names");
    let root = fs.root().to_path_buf();
    write(&fs, &root.join("synced"), "kept", true);
    fs.sync_dir(&root).unwrap();
    write(&fs, &root.join("named-late"), "bytes synced, name not", true);
    fs.rename(&root.join("synced"), &root.join("renamed")).unwrap();
    fs.remove_file(&root.join("old")).unwrap();
    assert_eq!(names(&root), ["named-late", "renamed"]);
    fs.crash().unwrap();
    // The rename, the removal and the new name were never synced into the directory.
    assert_eq!(names(&root), ["old", "synced"]);
    assert_eq!(std::fs::read_to_string(root.join("synced")).unwrap(), "kept");
    assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "old bytes");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn unsynced_bytes_are_lost_and_synced_renames_links_and_removals_stay() {
    let fs = tree("bytes");
    let root = fs.root().to_path_buf();
    write(&fs, &root.join("unsynced"), "lost", false);
    write(&fs, &root.join("a"), "synced", true);
    fs.hard_link(&root.join("a"), &root.join("b")).unwrap();
    fs.remove_file(&root.join("old")).unwrap();
    fs.sync_dir(&root).unwrap();
    fs.crash().unwrap();
    assert_eq!(names(&root), ["a", "b", "unsynced"]);
    assert_eq!(std::fs::read_to_string(root.join("unsynced")).unwrap(), "", "its bytes were never synced");
    assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "synced");
    // Still one file under two names.
    assert_eq!(inode(&root.join("a")).unwrap(), inode(&root.join("b")).unwrap());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_directory_is_there_after_a_crash_only_if_its_parent_was_synced() {
    let fs = tree("dirs");
    let root = fs.root().to_path_buf();
    for (dir, sync_parent) in [("kept", true), ("lost", false)] {
        let dir = root.join(dir);
        fs.create_dir_all(&dir).unwrap();
        if sync_parent {
            fs.sync_dir(&root).unwrap();
        }
        write(&fs, &dir.join("file"), "x", true);
        fs.sync_dir(&dir).unwrap();
    }
    fs.crash().unwrap();
    assert_eq!(names(&root), ["kept", "old"]);
    assert_eq!(names(&root.join("kept")), ["file"]);
    std::fs::remove_dir_all(&root).unwrap();
}
