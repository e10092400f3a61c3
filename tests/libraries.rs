//! Libraries, documents and accesses against the fake: every operation, documents
//! uploaded as multipart (from memory and streamed from disk), each request checked
//! against the OpenAPI spec when it is present.

mod support;

use support::client;
use support::spec;

use futures_util::TryStreamExt;
use mistral_tower::libraries::{
    CreateLibraryRequest, DocumentListQuery, DocumentUpload, EntityType, LibraryListQuery,
    OwnerType, ProcessStatus, ShareLevel, SharingDelete, SharingRequest, UpdateDocumentRequest,
    UpdateLibraryRequest,
};
use mistral_tower::testing::FakeMistral;

fn validate_all(fake: &FakeMistral) -> Vec<String> {
    let Some(spec) = spec::spec() else {
        return Vec::new();
    };
    fake.requests()
        .iter()
        .map(|r| {
            // The spec's `SharingDelete` requires `level` without declaring it (so no
            // body can pass a strict check): check that body by hand.
            if r.method == "DELETE" && r.path.ends_with("/share") {
                let body = r.json();
                assert!(body["share_with_uuid"].is_string() && body["share_with_type"].is_string());
                return "DELETE /v1/libraries/{library_id}/share".to_owned();
            }
            format!("{} {}", r.method, spec::validate_request(spec, r))
        })
        .collect()
}

const USER: &str = "00000000-0000-4000-b000-0000000000aa";

#[tokio::test]
async fn libraries_documents_and_accesses() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let libs = client.libraries();
    let docs = client.documents();

    let lib = libs
        .create(
            CreateLibraryRequest::new("handbooks")
                .description("Team handbooks")
                .chunk_size(1024)
                .owner_type(OwnerType::Workspace),
        )
        .await
        .unwrap();
    assert_eq!(lib.name, "handbooks");
    libs.create(CreateLibraryRequest::new("other"))
        .await
        .unwrap();

    let first = libs
        .list(LibraryListQuery::new().page_size(1))
        .await
        .unwrap();
    assert_eq!(first.total, Some(2));
    let all: Vec<_> = first.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let found = libs
        .list(
            LibraryListQuery::new()
                .search("hand")
                .filter_owned_by_me(true),
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let lib2 = libs
        .update(
            &lib.id,
            UpdateLibraryRequest::new().description("Handbooks"),
        )
        .await
        .unwrap();
    assert_eq!(lib2.description.as_deref(), Some("Handbooks"));
    let lib2 = libs
        .replace(&lib.id, UpdateLibraryRequest::new().name("manuals"))
        .await
        .unwrap();
    assert_eq!(lib2.name, "manuals");
    assert_eq!(lib2.description, None);

    // documents: from memory, then streamed from disk
    let a = docs
        .upload(&lib.id, DocumentUpload::bytes("a.txt", "Hello handbook"))
        .await
        .unwrap();
    assert_eq!(a.name, "a.txt");
    assert_eq!(a.size, Some(14));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.md");
    std::fs::write(&path, "# B\n").unwrap();
    let b = docs
        .upload(&lib.id, DocumentUpload::path(&path).await.unwrap())
        .await
        .unwrap();
    assert_eq!(b.name, "b.md");
    let upload = &fake.requests()[fake.requests().len() - 1];
    assert!(
        upload.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert_eq!(libs.get(&lib.id).await.unwrap().nb_documents, 2);

    let page = docs
        .list(
            &lib.id,
            DocumentListQuery::new()
                .page_size(1)
                .sort_by("created_at")
                .sort_order("asc"),
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(2));
    let all: Vec<_> = page.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let found = docs
        .list(&lib.id, DocumentListQuery::new().search("b.m"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let got = docs.get(&lib.id, &a.id).await.unwrap();
    assert_eq!(got.id, a.id);
    let mut attrs = serde_json::Map::new();
    attrs.insert("team".into(), "ops".into());
    let upd = docs
        .update(
            &lib.id,
            &a.id,
            UpdateDocumentRequest::new()
                .name("a2.txt")
                .attributes(attrs),
        )
        .await
        .unwrap();
    assert_eq!(upd.name, "a2.txt");
    assert_eq!(upd.attributes.as_ref().unwrap()["team"], "ops");
    let upd = docs
        .replace(&lib.id, &a.id, UpdateDocumentRequest::new().name("a3.txt"))
        .await
        .unwrap();
    assert_eq!(upd.name, "a3.txt");
    assert_eq!(
        docs.text_content(&lib.id, &a.id, None).await.unwrap().text,
        "Hello handbook"
    );
    docs.text_content(&lib.id, &a.id, Some((0, 1)))
        .await
        .unwrap();
    let status = docs.status(&lib.id, &a.id).await.unwrap();
    assert_eq!(status.process_status, Some(ProcessStatus::Done));
    assert!(
        docs.signed_url(&lib.id, &a.id)
            .await
            .unwrap()
            .starts_with("https://")
    );
    assert!(
        docs.extracted_text_signed_url(&lib.id, &a.id)
            .await
            .unwrap()
            .contains("/text")
    );
    let res = docs.reprocess(&lib.id, &a.id).await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        docs.status(&lib.id, &a.id).await.unwrap().process_status,
        Some(ProcessStatus::Todo)
    );
    docs.delete(&lib.id, &b.id).await.unwrap();
    let err = docs.get(&lib.id, &b.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    // accesses
    let s = libs
        .share(
            &lib.id,
            SharingRequest::new(EntityType::User, USER, ShareLevel::Editor),
        )
        .await
        .unwrap();
    assert_eq!(s.role, "Editor");
    assert_eq!(libs.shares(&lib.id).await.unwrap().data.len(), 1);
    libs.unshare(&lib.id, SharingDelete::new(EntityType::User, USER))
        .await
        .unwrap();
    assert!(libs.shares(&lib.id).await.unwrap().data.is_empty());

    let deleted = libs.delete(&lib.id).await.unwrap();
    assert_eq!(deleted.id, lib.id);
    let err = libs.get(&lib.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let ops = validate_all(&fake);
    if !ops.is_empty() {
        let d = "/v1/libraries/{library_id}/documents/{document_id}";
        let expected = [
            "POST /v1/libraries".to_owned(),
            "GET /v1/libraries".to_owned(),
            "GET /v1/libraries/{library_id}".to_owned(),
            "PATCH /v1/libraries/{library_id}".to_owned(),
            "PUT /v1/libraries/{library_id}".to_owned(),
            "DELETE /v1/libraries/{library_id}".to_owned(),
            "POST /v1/libraries/{library_id}/documents".to_owned(),
            "GET /v1/libraries/{library_id}/documents".to_owned(),
            format!("GET {d}"),
            format!("PATCH {d}"),
            format!("PUT {d}"),
            format!("DELETE {d}"),
            format!("GET {d}/text_content"),
            format!("GET {d}/status"),
            format!("GET {d}/signed-url"),
            format!("GET {d}/extracted-text-signed-url"),
            format!("POST {d}/reprocess"),
            "GET /v1/libraries/{library_id}/share".to_owned(),
            "PUT /v1/libraries/{library_id}/share".to_owned(),
            "DELETE /v1/libraries/{library_id}/share".to_owned(),
        ];
        for op in &expected {
            assert!(ops.iter().any(|o| o == op), "{op} not exercised: {ops:?}");
        }
    }
}
