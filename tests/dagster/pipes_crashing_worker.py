"""workers.clean with its first Iceberg commit raising (test_pipes_cleaning's crash)."""

from lake.cleaning import commit


def _refuse(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the worker crashed in the commit")


commit.commit_files = _refuse  # type: ignore[assignment]

if __name__ == "__main__":
    from workers.clean import main

    main()
