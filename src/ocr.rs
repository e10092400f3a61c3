//! OCR (`POST /v1/ocr`): request and response types.
//!
//! # Example
//!
//! ```
//! use mistral_tower::ocr::{OcrDocument, OcrRequest};
//!
//! let req = OcrRequest::new("mistral-ocr-latest", OcrDocument::document_url("https://arxiv.org/pdf/2201.04234"))
//!     .include_image_base64(false);
//! let body = serde_json::to_value(&req)?;
//! assert_eq!(body["document"]["type"], "document_url");
//! assert_eq!(body["include_image_base64"], false);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::common::{
    DocumentUrlChunk, FileChunk, ImageUrl, ImageUrlChunk, ResponseFormat, null_default, setters,
    string_enum,
};

string_enum! {
    /// The format of extracted tables.
    TableFormat {
        /// Markdown tables.
        Markdown = "markdown",
        /// HTML tables.
        Html = "html",
    }
}

string_enum! {
    /// Granularity of confidence scores.
    ConfidenceScoresGranularity {
        /// Per-word scores.
        Word = "word",
        /// Aggregate per page only.
        Page = "page",
        /// Per-block scores.
        Block = "block",
    }
}

string_enum! {
    /// The type of a content block of a page.
    OcrBlockType {
        /// Text.
        Text = "text",
        /// A list.
        List = "list",
        /// An image.
        Image = "image",
        /// A table.
        Table = "table",
        /// A title.
        Title = "title",
        /// An equation.
        Equation = "equation",
        /// A caption.
        Caption = "caption",
        /// Code.
        Code = "code",
        /// References.
        References = "references",
        /// Aside text.
        AsideText = "aside_text",
        /// A page header.
        Header = "header",
        /// A page footer.
        Footer = "footer",
        /// A signature region.
        Signature = "signature",
    }
}

/// The document to run OCR on, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OcrDocument {
    /// `{"type": "document_url", ...}`.
    #[serde(rename = "document_url")]
    DocumentUrl(DocumentUrlChunk),
    /// `{"type": "image_url", ...}`.
    #[serde(rename = "image_url")]
    ImageUrl(ImageUrlChunk),
    /// `{"type": "file", ...}`: an uploaded file.
    #[serde(rename = "file")]
    File(FileChunk),
}

impl OcrDocument {
    /// A document (e.g. PDF) at a URL.
    pub fn document_url(url: impl Into<String>) -> Self {
        OcrDocument::DocumentUrl(DocumentUrlChunk {
            document_url: url.into(),
            document_name: None,
        })
    }

    /// An image at a URL (or a `data:` URL).
    pub fn image_url(url: impl Into<String>) -> Self {
        OcrDocument::ImageUrl(ImageUrlChunk {
            image_url: ImageUrl::Url(url.into()),
        })
    }

    /// An uploaded file.
    pub fn file(file_id: impl Into<String>) -> Self {
        OcrDocument::File(FileChunk {
            file_id: file_id.into(),
        })
    }
}

/// Pages to process: a list of page numbers, or a string like `"0,2-4"` (from 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OcrPages {
    /// A string of comma-separated numbers and ranges.
    Ranges(String),
    /// Page numbers.
    List(Vec<u32>),
}

impl From<&str> for OcrPages {
    fn from(value: &str) -> Self {
        OcrPages::Ranges(value.to_owned())
    }
}

impl From<Vec<u32>> for OcrPages {
    fn from(value: Vec<u32>) -> Self {
        OcrPages::List(value)
    }
}

/// An OCR request (`OCRRequest`).
///
/// Every optional field is `None` by default and then not sent. Set fields directly or with the
/// builder-style setters of the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrRequest {
    /// The model (required by the spec; `None` is sent as `null`).
    pub model: Option<String>,
    /// Document to run OCR on.
    pub document: OcrDocument,
    /// Specific pages to process, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<OcrPages>,
    /// Include image URLs in response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_image_base64: Option<bool>,
    /// Max images to extract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_limit: Option<u32>,
    /// Minimum height and width of image to extract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_min_size: Option<u32>,
    /// Structured output for each extracted bounding box / image (only `json_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox_annotation_format: Option<ResponseFormat>,
    /// Structured output for the entire document (only `json_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_annotation_format: Option<ResponseFormat>,
    /// Prompt guiding the document annotation (needs `document_annotation_format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_annotation_prompt: Option<String>,
    /// Format of extracted tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_format: Option<TableFormat>,
    /// Extract the page header into `header` and remove it from the markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_header: Option<bool>,
    /// Extract the page footer into `footer` and remove it from the markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_footer: Option<bool>,
    /// Return paragraph-level bounding boxes for all content blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_blocks: Option<bool>,
    /// Granularity of confidence scores (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_scores_granularity: Option<ConfidenceScoresGranularity>,
}

impl OcrRequest {
    /// A request for a model and a document; every other field unset.
    pub fn new(model: impl Into<String>, document: OcrDocument) -> Self {
        OcrRequest {
            model: Some(model.into()),
            document,
            pages: None,
            include_image_base64: None,
            image_limit: None,
            image_min_size: None,
            bbox_annotation_format: None,
            document_annotation_format: None,
            document_annotation_prompt: None,
            table_format: None,
            extract_header: None,
            extract_footer: None,
            include_blocks: None,
            confidence_scores_granularity: None,
        }
    }

    setters! {
        pages: impl OcrPages,
        include_image_base64: bool,
        image_limit: u32,
        image_min_size: u32,
        bbox_annotation_format: ResponseFormat,
        document_annotation_format: ResponseFormat,
        document_annotation_prompt: impl String,
        table_format: impl TableFormat,
        extract_header: bool,
        extract_footer: bool,
        include_blocks: bool,
        confidence_scores_granularity: impl ConfidenceScoresGranularity,
    }
}

/// An OCR response (`OCRResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrResponse {
    /// List of OCR info for pages.
    #[serde(default, deserialize_with = "null_default")]
    pub pages: Vec<OcrPage>,
    /// The model used to generate the OCR.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// The document annotation, as a JSON string, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_annotation: Option<String>,
    /// Usage info for the OCR request.
    #[serde(default, deserialize_with = "null_default")]
    pub usage_info: OcrUsageInfo,
}

/// One page (`OCRPageObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrPage {
    /// The page index in a pdf document starting from 0.
    #[serde(default, deserialize_with = "null_default")]
    pub index: u32,
    /// The markdown string response of the page.
    #[serde(default, deserialize_with = "null_default")]
    pub markdown: String,
    /// List of all extracted images in the page.
    #[serde(default, deserialize_with = "null_default")]
    pub images: Vec<OcrImage>,
    /// List of all extracted tables in the page.
    #[serde(default, deserialize_with = "null_default")]
    pub tables: Vec<OcrTable>,
    /// List of all hyperlinks in the page.
    #[serde(default, deserialize_with = "null_default")]
    pub hyperlinks: Vec<String>,
    /// Header of the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Footer of the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// The dimensions of the page's screenshot image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<OcrPageDimensions>,
    /// Confidence scores for the page (when `confidence_scores_granularity` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_scores: Option<OcrPageConfidenceScores>,
    /// Paragraph-level bounding boxes in reading order (when `include_blocks` is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<OcrBlock>>,
}

/// An extracted image (`OCRImageObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrImage {
    /// Image ID for extracted image in a page.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// X coordinate of top-left corner of the extracted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_left_x: Option<u32>,
    /// Y coordinate of top-left corner of the extracted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_left_y: Option<u32>,
    /// X coordinate of bottom-right corner of the extracted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom_right_x: Option<u32>,
    /// Y coordinate of bottom-right corner of the extracted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom_right_y: Option<u32>,
    /// Base64 string of the extracted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_base64: Option<String>,
    /// Annotation of the extracted image, as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_annotation: Option<String>,
}

/// An extracted table (`OCRTableObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrTable {
    /// Table ID for extracted table in a page.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// Content of the table in the given format.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// Format of the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormat>,
    /// Per-word confidence scores (with `word` granularity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_confidence_scores: Option<Vec<OcrConfidenceScore>>,
}

/// Confidence score for a word (`OCRConfidenceScore`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrConfidenceScore {
    /// The word or text segment.
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
    /// Confidence score (0-1).
    #[serde(default, deserialize_with = "null_default")]
    pub confidence: f64,
    /// Start index of the text in the page markdown string.
    #[serde(default, deserialize_with = "null_default")]
    pub start_index: u64,
}

/// Dimensions of a page image (`OCRPageDimensions`); missing values read as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrPageDimensions {
    /// Dots per inch of the page-image.
    #[serde(default, deserialize_with = "null_default")]
    pub dpi: u32,
    /// Height of the image in pixels.
    #[serde(default, deserialize_with = "null_default")]
    pub height: u32,
    /// Width of the image in pixels.
    #[serde(default, deserialize_with = "null_default")]
    pub width: u32,
}

/// Confidence scores of a page (`OCRPageConfidenceScores`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrPageConfidenceScores {
    /// Word-level confidence scores (only with `word` granularity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_confidence_scores: Option<Vec<OcrConfidenceScore>>,
    /// Average confidence score for the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_page_confidence_score: Option<f64>,
    /// Minimum confidence score for the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_page_confidence_score: Option<f64>,
}

/// A content block of a page (`OCRTextBlock`, `OCRTableBlock`, ... in one type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrBlock {
    /// The block type.
    #[serde(rename = "type")]
    pub r#type: OcrBlockType,
    /// X coordinate of the top-left corner.
    #[serde(default, deserialize_with = "null_default")]
    pub top_left_x: u32,
    /// Y coordinate of the top-left corner.
    #[serde(default, deserialize_with = "null_default")]
    pub top_left_y: u32,
    /// X coordinate of the bottom-right corner.
    #[serde(default, deserialize_with = "null_default")]
    pub bottom_right_x: u32,
    /// Y coordinate of the bottom-right corner.
    #[serde(default, deserialize_with = "null_default")]
    pub bottom_right_y: u32,
    /// Text/markdown/html content of this block.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// Confidence scores (with `block` granularity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_scores: Option<OcrBlockConfidenceScores>,
    /// For image blocks: the entry in [`OcrPage::images`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// For table blocks: the entry in [`OcrPage::tables`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_id: Option<String>,
}

/// Confidence scores of a block (`OCRBlockConfidenceScores`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrBlockConfidenceScores {
    /// Average confidence over the block's content tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_content_confidence_score: Option<f64>,
    /// Minimum per-word content confidence in the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_content_confidence_score: Option<f64>,
    /// Confidence in the block type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_type_confidence_score: Option<f64>,
}

/// Usage of an OCR request (`OCRUsageInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrUsageInfo {
    /// Number of pages processed.
    #[serde(default, deserialize_with = "null_default")]
    pub pages_processed: u64,
    /// Document size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_size_bytes: Option<u64>,
}
