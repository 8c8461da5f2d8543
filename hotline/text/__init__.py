"""Chinese text pipeline: transcripts, cleaning, PII masking and segmentation."""
