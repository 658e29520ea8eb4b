"""peerbench-distill: the published reviewer's recipe as a resumable pipeline of file-based stages."""

__version__ = "0.1.0"
