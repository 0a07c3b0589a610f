import { checkCondaEnvironment, checkPipRequirements, checkPythonEnv, requirementLines } from "../../src/formats/models/requirements";

const problemsOf = (entries: string[]): string[] => checkPipRequirements(entries).problems.map((p) => p.entry);

describe("pip requirements: only named ones from the index pass", () => {
  it.each([
    "numpy",
    "scikit-learn==1.2.1",
    "mlflow>=2.9,<3",
    "torch[cuda]~=2.1",
    "pkg ; python_version < '3.12'",
    "pkg (>=1.0)",
    "pkg==1.0 --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "zope.interface!=5.0",
    "--pre",
    "--only-binary=:all:",
    "--require-hashes",
  ])("%s passes", (entry) => {
    expect(problemsOf([entry])).toEqual([]);
  });

  it.each([
    ["git+https://example.invalid/x.git#egg=x", "version-control"],
    ["hg+https://example.invalid/x", "version-control"],
    ["https://example.invalid/x-1.0.tar.gz", "URL"],
    ["file:///tmp/x-1.0-py3-none-any.whl", "URL"],
    ["x @ https://example.invalid/x.whl", "URL"],
    ["x@git+https://example.invalid/x", "URL"],
    ["./code/pkg", "local path"],
    ["../outside", "local path"],
    ["/opt/pkg", "local path"],
    ["wheels/x-1.0-py3-none-any.whl", "local path"],
    ["-e ./code/pkg", "-e"],
    ["--editable=git+https://example.invalid/x", "--editable"],
    ["-i https://example.invalid/simple", "-i"],
    ["--index-url https://example.invalid/simple", "--index-url"],
    ["--extra-index-url=https://example.invalid/simple", "--extra-index-url"],
    ["-f https://example.invalid/wheels", "-f"],
    ["--find-links /tmp/wheels", "--find-links"],
    ["--trusted-host example.invalid", "--trusted-host"],
    ["--some-future-option", "not one modelgate knows"],
    ["not a requirement at all!", "not a requirement by name"],
  ])("%s is refused (%s)", (entry, why) => {
    const { problems } = checkPipRequirements([entry]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.why).toContain(why);
  });

  it("follows -r and -c includes inside the bundle, refuses those that leave it", () => {
    const result = checkPipRequirements([
      "-r requirements.txt",
      "--requirement=extra/more.txt",
      "-c constraints.txt",
      "-r ../up.txt",
      "-r /etc/reqs.txt",
      "-c https://example.invalid/c.txt",
      "-r",
    ]);
    expect(result.includes).toEqual([
      { option: "-r", path: "requirements.txt" },
      { option: "-r", path: "extra/more.txt" },
      { option: "-c", path: "constraints.txt" },
    ]);
    expect(result.problems.map((p) => p.entry)).toEqual(["-r ../up.txt", "-r /etc/reqs.txt", "-c https://example.invalid/c.txt", "-r"]);
  });

  it("reads requirements.txt as pip does: comments, blank lines, continuations", () => {
    const text = "# pinned\nnumpy==1.26.4  # comment\n\nscikit-learn\\\n==1.2.1\ngit+https://example.invalid/x.git#egg=x\r\n";
    expect(requirementLines(text)).toEqual(["numpy==1.26.4", "scikit-learn==1.2.1", "git+https://example.invalid/x.git#egg=x"]);
  });
});

describe("conda.yaml and python_env.yaml", () => {
  it("checks conda channels, string dependencies and the pip list", () => {
    const env = {
      channels: ["conda-forge", "https://example.invalid/channel", "file:///opt/channel"],
      dependencies: [
        "python=3.11.2",
        "pip<=23.0.1",
        "https://example.invalid/pkg.tar.bz2",
        { pip: ["mlflow==2.9.2", "--extra-index-url https://example.invalid/simple", "-r requirements.txt"] },
      ],
      name: "mlflow-env",
    };
    const result = checkCondaEnvironment(env);
    expect(result.problems.map((p) => p.entry)).toEqual([
      "https://example.invalid/channel",
      "file:///opt/channel",
      "https://example.invalid/pkg.tar.bz2",
      "--extra-index-url https://example.invalid/simple",
    ]);
    expect(result.includes).toEqual([{ option: "-r", path: "requirements.txt" }]);
    expect(checkCondaEnvironment({ channels: ["conda-forge", "defaults"], dependencies: ["python=3.11", "conda-forge::numpy"] }).problems).toEqual([]);
  });

  it("checks python_env.yaml's build_dependencies and dependencies as pip requirements", () => {
    const ok = checkPythonEnv({ python: "3.11.2", build_dependencies: ["pip==23.0.1", "setuptools", "wheel"], dependencies: ["-r requirements.txt"] });
    expect(ok).toEqual({ problems: [], includes: [{ option: "-r", path: "requirements.txt" }] });
    const bad = checkPythonEnv({ build_dependencies: ["git+https://example.invalid/setuptools"], dependencies: ["-e ."] });
    expect(bad.problems.map((p) => p.entry)).toEqual(["git+https://example.invalid/setuptools", "-e ."]);
  });

  it("ignores what is not a mapping (the member inspection reports unreadable YAML)", () => {
    expect(checkCondaEnvironment(["x"])).toEqual({ problems: [], includes: [] });
    expect(checkPythonEnv(null)).toEqual({ problems: [], includes: [] });
  });
});
