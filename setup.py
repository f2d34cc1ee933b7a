from setuptools import find_packages, setup


def _version():
    with open('mmman/version.py') as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('no __version__ in mmman/version.py')


setup(
    name='mmman',
    version=_version(),
    description='Supervised local learning with Momentum Auxiliary Networks '
    '(MAN, MAN++) for OpenMMLab',
    packages=find_packages(include=['mmman', 'mmman.*']),
    python_requires='>=3.9',
    install_requires=['mmengine>=0.10.7', 'torch>=2.0'],
    license='Apache-2.0',
)
