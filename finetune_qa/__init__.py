"""finetune_qa: the whole life of a fine-tuned question-answering chatbot, typed.

QA pairs -> chat training data -> validation, exact token counts and cost, and (in
later releases) upload, jobs, queries, evaluation and guardrails, against OpenAI or an
offline backend. Everything public is importable from here.

Example:
    >>> from finetune_qa import QAPair, TrainingExample
    >>> TrainingExample.from_qa(QAPair(question="Who are you?", answer="Acme's bot.")).answer
    "Acme's bot. **STOP**"
"""

from finetune_qa._version import __version__
from finetune_qa.catalog import (
    ModelCatalog,
    ModelInfo,
    base_model_name,
    default_catalog,
    get_model_info,
)
from finetune_qa.data import (
    FunctionCall,
    FunctionDefinition,
    Message,
    Provenance,
    QAPair,
    Role,
    Tool,
    ToolCall,
    TrainingExample,
)
from finetune_qa.dataset import BuildReport, DatasetBuilder, ReasonCount, ReasonExample
from finetune_qa.exceptions import (
    ConfigError,
    CSVFormatError,
    DatasetError,
    FineTuneQAError,
    InputError,
    InputFileError,
    JSONLFormatError,
    RecordError,
    TokenizerError,
    UnbalancedListsError,
    UnknownEncodingError,
    UnknownModelError,
    UsageError,
    ValidationFailed,
)
from finetune_qa.readers import QASource, ReadIssue, read_qa, strip_numbering
from finetune_qa.samples import sample_csv
from finetune_qa.tokens import BatchCounter, TokenCounter, encoding_name_for_model, get_encoding
from finetune_qa.validation import (
    CostEstimate,
    Distribution,
    ValidationIssue,
    ValidationReport,
    Validator,
    default_epochs,
    validate_examples,
    validate_file,
)

__all__ = [
    "BatchCounter",
    "BuildReport",
    "CSVFormatError",
    "ConfigError",
    "CostEstimate",
    "DatasetBuilder",
    "DatasetError",
    "Distribution",
    "FineTuneQAError",
    "FunctionCall",
    "FunctionDefinition",
    "InputError",
    "InputFileError",
    "JSONLFormatError",
    "Message",
    "ModelCatalog",
    "ModelInfo",
    "Provenance",
    "QAPair",
    "QASource",
    "ReadIssue",
    "ReasonCount",
    "ReasonExample",
    "RecordError",
    "Role",
    "TokenCounter",
    "TokenizerError",
    "Tool",
    "ToolCall",
    "TrainingExample",
    "UnbalancedListsError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UsageError",
    "ValidationFailed",
    "ValidationIssue",
    "ValidationReport",
    "Validator",
    "__version__",
    "base_model_name",
    "default_catalog",
    "default_epochs",
    "encoding_name_for_model",
    "get_encoding",
    "get_model_info",
    "read_qa",
    "sample_csv",
    "strip_numbering",
    "validate_examples",
    "validate_file",
]
