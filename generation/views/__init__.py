"""Generation's pages, one module per page: `review` (the teacher's), `head` (the department
head's), `quick_draft` (the model card's form); `context` builds what they share."""
