"""The offline backend's fake of the OpenAI API, as a package of private modules."""
